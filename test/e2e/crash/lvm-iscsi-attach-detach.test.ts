import { LVM_IET } from './cluster.js';
import { ATTACH_W, DETACH_LAST } from './matrix.js';
import { crashMatrix, SharedCluster } from './suite.js';

/**
 * The crash matrix on the lvm-iscsi back end (LVs of a simulated VG, targets
 * on the simulated IET), every case: attaching read-write and detaching the
 * last attachment, where export, discovery, login, the phy: attach of the
 * by-path device, and their opposites, are all real steps.
 */
const shared = new SharedCluster(LVM_IET);
shared.register();
crashMatrix(shared, [ATTACH_W, DETACH_LAST]);
