import { CommanderError } from '@commander-js/extra-typings';
import { VbsError } from '../core/errors.js';
import type { OutputStream } from './runtime.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/**
 * Wrong input or local configuration, found before anything was sent: exit 2.
 * `code` is set when the problem is one the service would also report (e.g.
 * InvalidParameterValue), so the message reads the same either way.
 */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

/** The call succeeded but what it started did not (a record ended in error, a wait timed out): exit 1. */
export class CliFailure extends Error {
  override readonly name = 'CliFailure';
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

/** Runs a shared validator (src/core/validate.ts) and turns its fault into a usage error. */
export function checkLocally<T>(validate: () => T): T {
  try {
    return validate();
  } catch (err) {
    if (err instanceof VbsError) throw new UsageError(err.message, err.code);
    throw err;
  }
}

/** Prints what went wrong, without a stack trace for anything expected, and returns the exit code. */
export function reportError(err: unknown, stderr: OutputStream, debug = false): number {
  if (err instanceof CommanderError) {
    // Commander has already printed its message (or the help / version).
    return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
  }
  if (err instanceof VbsError) {
    // The request id finds the request in the services' logs: what to give an operator.
    stderr.write(line(err.code, err.requestId ? `${err.message} (request id ${err.requestId})` : err.message));
    return EXIT_FAILED;
  }
  if (err instanceof UsageError) {
    stderr.write(line(err.code, err.message));
    return EXIT_USAGE;
  }
  if (err instanceof CliFailure) {
    stderr.write(line(err.code, err.message));
    return EXIT_FAILED;
  }
  // A bug, not an expected error: say so, and keep the stack for VBS_DEBUG.
  const detail = debug && err instanceof Error && err.stack ? err.stack : String(err instanceof Error ? err.message : err);
  stderr.write(`vbs: unexpected error: ${detail}\n`);
  return EXIT_FAILED;
}

function line(code: string | undefined, message: string): string {
  return code ? `vbs: ${code}: ${message}\n` : `vbs: ${message}\n`;
}
