import { InvalidArgumentError, type Command, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { VBS_SERVICE } from '../services/vbs.js';
import type { ServiceDefinition } from '../soap/schema.js';
import { VbsApi } from './api.js';
import { findClientConfig } from './config.js';
import { formatJson } from './format.js';
import { Progress } from './progress.js';
import type { Caller, CliRuntime } from './runtime.js';
import { DEFAULT_WAIT_SECONDS, type WaitOptions } from './wait.js';

/** The options every command accepts (before or after the command name). */
export interface GlobalOptions {
  readonly config?: string;
  readonly json: boolean;
  readonly wait: boolean;
  readonly timeoutSeconds: number;
}

export function registerGlobalOptions(program: Command): void {
  program
    .option('--config <file>', 'client configuration (default: $VBS_CONFIG, else ./vbs-data/client.json)')
    .option('--json', 'print the records as JSON')
    .option('--wait', 'wait until what the command started has finished')
    .option('--timeout <seconds>', 'give up waiting after this long (with --wait)', parseSeconds, DEFAULT_WAIT_SECONDS);
}

function parseSeconds(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number of seconds.');
  return n;
}

export function globalOptions(cmd: CommandUnknownOpts): GlobalOptions {
  const o = cmd.optsWithGlobals();
  return {
    config: typeof o.config === 'string' ? o.config : undefined,
    json: o.json === true,
    wait: o.wait === true,
    timeoutSeconds: typeof o.timeout === 'number' ? o.timeout : DEFAULT_WAIT_SECONDS,
  };
}

/**
 * One run of one command: its global options, its output, and the clients it
 * opened (connected lazily, so argument errors are reported before any
 * configuration is read or anything is sent). Command groups use it like:
 *
 *   .action((id, opts, cmd) => invoke(runtime, cmd, async (inv) => { ... inv.vbs() ... }))
 */
export class Invocation {
  private readonly callers: Caller[] = [];
  private api?: VbsApi;

  constructor(
    readonly runtime: CliRuntime,
    readonly options: GlobalOptions,
  ) {}

  /** The front's API, with the retry policy reporting on stderr. */
  vbs(): VbsApi {
    this.api ??= new VbsApi(this.connect(VBS_SERVICE), {
      sleep: this.runtime.sleep,
      onRetry: (err, retry, of, delayMs) =>
        this.runtime.stderr.write(`vbs: ${err.code}: ${err.message} Retrying in ${delayMs / 1000} s (${retry} of ${of}).\n`),
    });
    return this.api;
  }

  /** A raw client for any service reachable with the client configuration (e.g. an admin service). */
  connect(def: ServiceDefinition): Caller {
    const { file } = findClientConfig(this.options.config, this.runtime);
    const caller = this.runtime.connect(def, file);
    this.callers.push(caller);
    return caller;
  }

  waitOptions(): WaitOptions {
    return {
      timeoutMs: this.options.timeoutSeconds * 1000,
      sleep: this.runtime.sleep,
      now: this.runtime.now,
      progress: new Progress(this.runtime.stderr, this.runtime.now),
    };
  }

  /** Prints `record` as JSON under --json, else as the table `table` renders. */
  print<T>(record: T, table: (record: T) => string): void {
    this.runtime.stdout.write(this.options.json ? formatJson(record) : table(record));
  }

  close(): void {
    for (const caller of this.callers.splice(0)) caller.close?.();
  }
}

export async function invoke(runtime: CliRuntime, cmd: CommandUnknownOpts, run: (inv: Invocation) => Promise<void>): Promise<void> {
  const inv = new Invocation(runtime, globalOptions(cmd));
  try {
    await run(inv);
  } finally {
    inv.close();
  }
}
