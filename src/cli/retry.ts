import { VbsError } from '../core/errors.js';

/** Waits before the 1st, 2nd and 3rd retry. */
export const RETRY_DELAYS_MS: readonly number[] = [500, 1_000, 2_000];

export interface RetryOptions {
  readonly sleep: (ms: number) => Promise<void>;
  readonly delaysMs?: readonly number[];
  /** Told before each retry, so the user sees why the command is slow. */
  readonly onRetry?: (err: VbsError, retry: number, of: number, delayMs: number) => void;
}

/**
 * Runs `attempt` again while it fails with ServiceUnavailable (the front could
 * not be reached or did not answer). Only for calls that are safe to repeat:
 * Describe*, and creates that carry a client token, whose retry the front
 * recognizes instead of creating a second record. Any other error is final.
 */
export async function retryWhenUnavailable<T>(attempt: () => Promise<T>, opts: RetryOptions): Promise<T> {
  const delays = opts.delaysMs ?? RETRY_DELAYS_MS;
  for (let retry = 0; ; retry++) {
    try {
      return await attempt();
    } catch (err) {
      const delayMs = delays[retry];
      if (!isUnavailable(err) || delayMs === undefined) throw err;
      opts.onRetry?.(err, retry + 1, delays.length, delayMs);
      await opts.sleep(delayMs);
    }
  }
}

function isUnavailable(err: unknown): err is VbsError {
  return err instanceof VbsError && err.code === 'ServiceUnavailable';
}
