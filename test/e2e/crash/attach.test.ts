import { ATTACH_R, ATTACH_W } from './matrix.js';
import { crashMatrix, SharedCluster } from './suite.js';

/** Crash matrix, part 2: attaching, read-write and read-only. */
const shared = new SharedCluster();
shared.register();
crashMatrix(shared, [ATTACH_W, ATTACH_R]);
