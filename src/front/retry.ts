import { failureOutcome } from '../core/outcome.js';
import type { Record as XmlRecord } from '../soap/xml.js';
import type { DelegateClient } from './delegates.js';

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  readonly attempts: number;
  /** Wait before the second attempt; doubled for each one after. */
  readonly firstDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 3, firstDelayMs: 200 };

/**
 * Every delegate operation is idempotent, so a call that never reached its
 * delegate (refused, no route: a restart, a blip) is simply sent again, a
 * bounded number of times. A call whose outcome is unknown (a timeout, a
 * connection cut after sending) is not: the delegate may still be working on
 * it, and the workflow engine looks before it decides. Only never-delivered
 * attempts are repeated, so a final refusal still means "nothing changed".
 */
export class RetryingDelegate implements DelegateClient {
  constructor(
    private readonly inner: DelegateClient,
    private readonly policy: RetryPolicy = DEFAULT_RETRY,
    private readonly sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
  ) {}

  async call(operation: string, input: XmlRecord, timeoutMs?: number): Promise<XmlRecord> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.inner.call(operation, input, timeoutMs);
      } catch (err) {
        if (attempt >= this.policy.attempts || failureOutcome(err) !== 'not-delivered') throw err;
        await this.sleep(this.policy.firstDelayMs * 2 ** (attempt - 1));
      }
    }
  }

  close(): void {
    (this.inner as { close?: () => void }).close?.();
  }
}
