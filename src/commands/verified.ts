import { errorMessage } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { CommandFailed } from './runner.js';
import { UnknownOutcome } from './unknown-outcome.js';

/**
 * Runs one host step whose effect can be observed. A command that failed or
 * timed out has an unknown outcome (it may have acted before it was stopped,
 * or failed because the effect was already there), so it is never taken to
 * have done nothing: the host is looked at, and the step counts as done when
 * its effect is in place, and as refused (the command's own error) only when
 * the host shows it is not. When the host cannot be looked at, the outcome
 * stays unknown (UnknownOutcome): a refusal would tell the caller that nothing
 * changed, which nobody saw. Errors that are not a command's (a refused
 * parameter) are not second-guessed.
 */
export async function runVerified(
  what: string,
  step: () => Promise<unknown>,
  isDone: () => Promise<boolean>,
  log?: Pick<Logger, 'warn'>,
): Promise<void> {
  try {
    await step();
    return;
  } catch (err) {
    if (!(err instanceof CommandFailed)) throw err;
    let done: boolean;
    try {
      done = await isDone();
    } catch (lookErr) {
      throw UnknownOutcome.of(what, err, lookErr);
    }
    if (!done) throw err;
    log?.warn(`${what}: the command did not succeed, but the host shows it done`, { key: err.key, message: errorMessage(err) });
  }
}
