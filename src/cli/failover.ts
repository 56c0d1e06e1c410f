import { VbsError } from '../core/errors.js';
import { failureOutcome } from '../core/outcome.js';
import type { Record as XmlRecord } from '../soap/xml.js';
import type { Caller } from './runtime.js';

/** One front of a configuration and the client that talks to it. */
export interface Front {
  readonly url: string;
  readonly caller: Caller;
}

/**
 * Several fronts on one database (docs/operators/multi-front.md): a call goes
 * to the front that last answered and, when that one does not answer, to the
 * next. Only when it is safe:
 * - the request never reached the front (connection refused, no connection
 *   within the connect timeout): any request, since nothing was done;
 * - the outcome is unknown (a timeout after the request was sent, a cut
 *   connection): only requests that cannot do anything twice (`repeatable`),
 *   as a second front would otherwise do it again.
 * A front that answered (even with a fault) is never asked again elsewhere:
 * its answer is the outcome.
 */
export class FailoverCaller implements Caller {
  private current = 0;

  constructor(
    private readonly fronts: readonly Front[],
    /** Told each time a call moves on to the next front, so a user sees why it was slow. */
    private readonly onFailover: (from: string, to: string, err: VbsError) => void = () => {},
  ) {
    if (!fronts.length) throw new Error('FailoverCaller needs at least one front');
  }

  async call(operation: string, input: XmlRecord): Promise<XmlRecord> {
    const n = this.fronts.length;
    for (let i = 0; ; i++) {
      const at = (this.current + i) % n;
      const front = this.fronts[at]!;
      try {
        const out = await front.caller.call(operation, input);
        this.current = at;
        return out;
      } catch (err) {
        if (i === n - 1 || !mayTryNext(err, operation, input)) throw err;
        this.onFailover(front.url, this.fronts[(at + 1) % n]!.url, err as VbsError);
      }
    }
  }

  close(): void {
    for (const f of this.fronts) f.caller.close?.();
  }
}

/** Whether a failed call may be sent to another front (see FailoverCaller). */
export function mayTryNext(err: unknown, operation: string, input: XmlRecord): boolean {
  if (!(err instanceof VbsError) || err.code !== 'ServiceUnavailable') return false;
  // A front's own ServiceUnavailable fault is its answer; only a transport failure (it carries its socket error as cause) is not.
  if (err.cause === undefined) return false;
  if (failureOutcome(err) === 'not-delivered') return true;
  return repeatable(operation, input);
}

/** Operations that a second delivery cannot make do anything twice. */
const REPEATABLE = new Set([
  'ShareSnapshot',
  'UnshareSnapshot',
  'SetQuota',
  'CreateTags',
  'DeleteTags',
]);

/** Reads; puts of values; creates that carry a client token (the front recognises their repeat, on any front: the token is in the database). */
export function repeatable(operation: string, input: XmlRecord): boolean {
  if (operation.startsWith('Describe')) return true;
  if (REPEATABLE.has(operation)) return true;
  return (operation === 'CreateVolume' || operation === 'CreateSnapshot') && typeof input.clientToken === 'string' && input.clientToken !== '';
}
