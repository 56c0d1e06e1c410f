import type { Logger } from '../core/log.js';
import { VbsError } from '../core/errors.js';

/**
 * A workflow's generation in its journaled data (src/db/generations.ts).
 * Workflows journaled before generations existed have none: their calls go
 * without one, which a delegate takes as 0.
 */
export interface Numbered {
  generation?: number;
}

/** The `generation` input of a delegate call made for this workflow. */
export function generationOf(d: Numbered): { generation?: number } {
  return d.generation === undefined ? {} : { generation: d.generation };
}

/**
 * Runs a withdrawal (an undo, or a detach's logout/unexport) that a delegate
 * may refuse as stale: a newer workflow on the volume already set the thing up
 * again, for itself, and the delegate changed nothing. There is nothing of
 * this workflow's left to withdraw, so the withdrawal is done: dropped, never
 * retried (retrying would be refused for ever, and must never succeed).
 */
export async function unlessSuperseded(log: Logger, what: string, d: Numbered & { volumeId?: string }, withdraw: () => Promise<unknown>): Promise<void> {
  try {
    await withdraw();
  } catch (err) {
    if (!(err instanceof VbsError && err.code === 'StaleGeneration')) throw err;
    log.info('withdrawal dropped: a newer operation on the resource has acted there since', { what, generation: d.generation, volumeId: d.volumeId, message: err.message });
  }
}
