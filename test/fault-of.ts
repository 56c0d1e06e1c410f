import { VbsError } from '../src/core/errors.js';

/** The VBS fault a promise rejects with; anything else (or no rejection at all) fails the test. */
export async function faultOf(p: Promise<unknown>): Promise<VbsError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof VbsError) return err;
    throw err;
  }
  throw new Error('expected a fault');
}
