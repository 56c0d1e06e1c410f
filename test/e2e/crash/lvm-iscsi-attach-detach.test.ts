import { LVM_IET } from './cluster.js';
import { ATTACH_W, DETACH_LAST, type CrashTarget, type Scenario } from './matrix.js';
import { crashMatrix, SharedCluster } from './suite.js';

/**
 * The crash matrix on the lvm-iscsi back end (LVs of a simulated VG, targets
 * on the simulated IET): attaching read-write and detaching the last
 * attachment, where export, discovery, login, the phy: attach of the
 * by-path device, and their opposites, are all real steps.
 *
 * Every delegate killed before and after each step, and the front killed
 * after each step: the points where the hosts hold a different state. The
 * front's other points (once journaled, before a step, before the commit)
 * leave the hosts as one of those does (a step journaled but never sent is
 * a delegate killed before acting), and run on the file back end's matrix
 * (attach.test.ts, detach.test.ts): each case here costs a restart of
 * processes that each start the simulated tools.
 */
const hostStatePoints = (_s: Scenario, target: CrashTarget) => target.role !== 'front' || /\/[0-9]+\/after$/.test(target.point);

const shared = new SharedCluster(LVM_IET);
shared.register();
crashMatrix(shared, [ATTACH_W, DETACH_LAST], hostStatePoints);
