import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * The fence around a runner's claim (src/workflows/engine.ts): while a step
 * runs under a claim, every delegate call it makes is tied to that claim's
 * signal. When the claim may be lost (a lease renewal failed, or the lease
 * is about to run out unrenewed: the front is cut off from its database),
 * the signal aborts: calls in flight are cut and no new one is sent, before
 * another front can take the work over. Several fronts on one database rest
 * on this (docs/operators/multi-front.md).
 */
const fenceScope = new AsyncLocalStorage<AbortSignal>();

/** Runs `work` with its delegate calls fenced by `signal`. */
export function fenced<T>(signal: AbortSignal, work: () => Promise<T>): Promise<T> {
  return fenceScope.run(signal, work);
}

/** The fence of the work running now, if it runs under a claim. */
export function currentFence(): AbortSignal | undefined {
  return fenceScope.getStore();
}

/** Socket-error codes of fenced calls: not sent at all (not delivered), or cut while in flight (outcome unknown). */
export const FENCED_BEFORE_SEND = 'EFENCED';
export const FENCED_IN_FLIGHT = 'EFENCEDINFLIGHT';
