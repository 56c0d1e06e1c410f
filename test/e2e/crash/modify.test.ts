import { MODIFY_ATTACHED } from './matrix.js';
import { crashMatrix, SharedCluster } from './suite.js';

/** Crash matrix, ModifyVolume: an attached volume grows; the front or a delegate is killed at each step. */
const shared = new SharedCluster();
shared.register();
crashMatrix(shared, [MODIFY_ATTACHED]);
