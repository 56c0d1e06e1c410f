import { VbsError } from './errors.js';

/**
 * What a failed call to a delegate tells us about the host, decided in this
 * one place for the retries (src/front/retry.ts), the workflow engine and the
 * consistency check alike.
 *
 * - `not-delivered`: the request never reached a process that could act on it
 *   (connection refused, no route). Nothing changed on the host.
 * - `refused`: the delegate answered with a fault (other than
 *   ServiceUnavailable). Delegate operations are ensure-style and leave
 *   nothing half-done, so nothing changed either.
 * - `unknown`: the request may have been acted on (a timeout, a connection cut
 *   after it was sent, an internal error, a broken answer). Look before acting.
 */
export type FailureOutcome = 'not-delivered' | 'refused' | 'unknown';

/**
 * Socket errors raised before a request's bytes can have left this process
 * (ECONNECTTIMEOUT: the SOAP client's own, for a connection not established
 * in time; the request is written only once TLS is up. EFENCED: a call its
 * runner's lost claim kept from being sent, src/core/claim-fence.ts).
 */
const NOT_DELIVERED_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL', 'ECONNECTTIMEOUT', 'EFENCED']);

export function failureOutcome(err: unknown): FailureOutcome {
  if (!(err instanceof VbsError)) return 'unknown';
  if (err.code === 'InternalError') return 'unknown';
  if (err.code !== 'ServiceUnavailable') return 'refused';
  const code = (err.cause as { code?: unknown } | undefined)?.code;
  // Anything else unavailable (a timeout, a cut connection, a broken answer) may have acted.
  return typeof code === 'string' && NOT_DELIVERED_CODES.has(code) ? 'not-delivered' : 'unknown';
}
