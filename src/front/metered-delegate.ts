import { toSafeError } from '../core/errors.js';
import { delegateCalled, stopwatch } from '../core/metrics.js';
import type { DelegateClient } from '../core/delegates.js';
import type { Record as XmlRecord } from '../soap/xml.js';

/**
 * Counts and times each call the front makes to a delegate (its retries of
 * undelivered attempts included: what a workflow step waited for), by the
 * delegate's configured name, the operation and the outcome: ok or the
 * fault code, never a message.
 */
export class MeteredDelegate implements DelegateClient {
  constructor(
    private readonly inner: DelegateClient,
    private readonly kind: 'volume' | 'vmm',
    private readonly name: string,
  ) {}

  async call(operation: string, input: XmlRecord, timeoutMs?: number): Promise<XmlRecord> {
    const took = stopwatch();
    try {
      const out = await this.inner.call(operation, input, timeoutMs);
      delegateCalled(this.kind, this.name, operation, 'ok', took());
      return out;
    } catch (err) {
      delegateCalled(this.kind, this.name, operation, toSafeError(err).code, took());
      throw err;
    }
  }

  close(): void {
    (this.inner as { close?: () => void }).close?.();
  }
}
