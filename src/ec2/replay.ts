/**
 * Signatures of state-changing requests seen while they are still valid
 * (X-Amz-Date ± the allowed skew): the same signed request sent again is a
 * replay and is refused. Reads are not remembered: repeating one changes
 * nothing, and SDKs send identical reads within a second. Bounded: past
 * `max` entries the oldest is forgotten (a flood can only shorten the window,
 * never grow memory).
 */
export class ReplayGuard {
  /** Signature → until when it is remembered (insertion order ≈ expiry order). */
  private readonly seen = new Map<string, number>();

  constructor(private readonly max = 100_000) {}

  /** True the first time a signature is offered while valid; false for a replay. */
  admit(signature: string, validUntil: number, now: number): boolean {
    for (const [sig, until] of this.seen) {
      if (until >= now) break;
      this.seen.delete(sig);
    }
    const until = this.seen.get(signature);
    if (until !== undefined && until >= now) return false;
    if (this.seen.size >= this.max) this.seen.delete(this.seen.keys().next().value!);
    this.seen.set(signature, validUntil);
    return true;
  }
}
