import { LVM_TGT } from './cluster.js';
import { ATTACH_W } from './matrix.js';
import { crashMatrix, kept, SharedCluster } from './suite.js';

/**
 * A few cases of the crash matrix against a real tgtd the cluster starts
 * (root and Debian's tgt, as in CI): a real target a rollback must withdraw
 * after the login to it (the front killed after step 3), and one a volume
 * delegate made just before it was killed (the front's undo must find it).
 */
const KEPT = new Set(['AttachVolume/3/after', 'VolumeDelegate.ExportVolume/after']);

const shared = new SharedCluster(LVM_TGT);
shared.register();
crashMatrix(shared, [ATTACH_W], kept((_, target) => KEPT.has(target.point)));
