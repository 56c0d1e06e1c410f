import { ATTACH_R, ATTACH_W } from './matrix.js';
import { crashMatrix, hostStatesAndSample, SAMPLED_SHARE, SharedCluster } from './suite.js';

/** Crash matrix, part 2: attaching, read-write and read-only. */
const shared = new SharedCluster();
shared.register();
crashMatrix(shared, [ATTACH_W, ATTACH_R], hostStatesAndSample(SAMPLED_SHARE));
