import { LVM_IET } from './cluster.js';
import { ATTACH_W, DETACH_LAST } from './matrix.js';
import { alwaysAndSample, crashMatrix, isHostStatePoint, SharedCluster } from './suite.js';

/**
 * The crash matrix on the lvm-iscsi back end (LVs of a simulated VG, targets
 * on the simulated IET): attaching read-write and detaching the last
 * attachment, where export, discovery, login, the phy: attach of the
 * by-path device, and their opposites, are all real steps.
 *
 * Every delegate killed before and after each step, every run: between them
 * they leave the hosts in each state the operation passes through (none of
 * its steps done, the first done, ...), each with the call cut off before or
 * after it acted. The front killed after a step has acted (for the last
 * step: `<Kind>/commit`, before its "done" is journaled with the commit)
 * leaves the hosts as the delegate killed after that step does, and recovers
 * from its journal instead: half of those points run each run, chosen by the
 * run's seed (VBS_TEST_SEED repeats a choice), so that a few runs go through
 * all of them. The front's other points (before a step, once the commit is
 * journaled) differ from those only in the journal, and are sampled on the file
 * back end's matrix (attach.test.ts, detach.test.ts): each case here costs a
 * restart of processes that each start the simulated tools.
 */
const shared = new SharedCluster(LVM_IET);
shared.register();
crashMatrix(
  shared,
  [ATTACH_W, DETACH_LAST],
  alwaysAndSample((target) => target.role !== 'front', 1 / 2, isHostStatePoint),
);
