import { DETACH_LAST, DETACH_ONE_OF_SEVERAL } from './matrix.js';
import { crashMatrix, hostStatesAndSample, SAMPLED_SHARE, SharedCluster } from './suite.js';

/** Crash matrix, part 3: detaching the last attachment, and one of several read-only ones. */
const shared = new SharedCluster();
shared.register();
crashMatrix(shared, [DETACH_LAST, DETACH_ONE_OF_SEVERAL], hostStatesAndSample(SAMPLED_SHARE));
