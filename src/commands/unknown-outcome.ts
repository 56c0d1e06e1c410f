import { VbsError } from '../core/errors.js';
import { CommandFailed } from './runner.js';

/**
 * A host step whose outcome could not be observed: a command failed (or was
 * about to run) and the listing that would show what it did failed too. It
 * may have acted, so it is never reported as a refusal (which the front reads
 * as "nothing changed": src/core/outcome.ts) but as ServiceUnavailable, an
 * unknown outcome the caller resolves by looking again.
 *
 * `failures` are the commands that failed (the step's, then the look's), for
 * the delegate's log; the message names only their pattern keys.
 */
export class UnknownOutcome extends VbsError {
  constructor(
    what: string,
    readonly failures: readonly CommandFailed[],
    /** What stood in the way of knowing, when it is not a failed look. */
    why = 'the host could not be looked at',
  ) {
    const keys = failures.map((f) => f.key).join(', ');
    super('ServiceUnavailable', `${what}: ${why}${keys ? ` (${keys} failed)` : ''}, so its outcome is unknown.`);
  }

  /** The failures of `errors` that are host commands' (others are not the host's to explain). */
  static of(what: string, ...errors: unknown[]): UnknownOutcome {
    return new UnknownOutcome(
      what,
      errors.flatMap((e) => (e instanceof UnknownOutcome ? e.failures : e instanceof CommandFailed ? [e] : [])),
    );
  }
}
