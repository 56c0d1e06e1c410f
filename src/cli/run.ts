import { reportError } from './errors.js';
import { buildProgram } from './program.js';
import { processRuntime, type CliRuntime } from './runtime.js';

/** Parses and runs one command line; resolves to the exit code instead of exiting. */
export async function runCli(argv: readonly string[], runtime: CliRuntime = processRuntime()): Promise<number> {
  try {
    await buildProgram(runtime).parseAsync([...argv]);
    return 0;
  } catch (err) {
    return reportError(err, runtime.stderr, Boolean(runtime.env.VBS_DEBUG));
  }
}
