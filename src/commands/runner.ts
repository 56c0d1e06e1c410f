import { VbsError } from '../core/errors.js';
import { hostCommandRan, stopwatch } from '../core/metrics.js';
import type { CommandCatalog } from './catalog.js';
import { fillDelivery, fillPattern, type Params } from './pattern.js';
import type { CommandHelper } from './helper-client.js';
import { runProcessGroup, type GroupOptions } from './process-group.js';
import { Semaphore } from './semaphore.js';

export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
}

/** Raised when a host command exits non-zero, times out or cannot start. */
export class CommandFailed extends VbsError {
  constructor(
    readonly key: string,
    readonly argv: readonly string[],
    readonly result: { exitCode?: number; signal?: NodeJS.Signals; stderr: string; timedOut: boolean; lost?: boolean },
  ) {
    // What the tool printed stays in `result`, for the delegate's log: it can
    // name paths and hosts, so it is never part of a message users see.
    super('OperationFailed', `${key} ${CommandFailed.howItEnded(result)}`);
  }

  /** The command may have acted: it timed out, or the helper running it ended. A caller looks before deciding. */
  get outcomeUnknown(): boolean {
    return this.result.timedOut || this.result.lost === true;
  }

  /** How a command that did not time out ended: its exit code, the signal that killed it, or that it never ran. */
  static howItEnded(result: { exitCode?: number; signal?: NodeJS.Signals; timedOut?: boolean; lost?: boolean }): string {
    if (result.timedOut) return 'timed out (its outcome is unknown)';
    if (result.lost) return 'was cut off: the command helper ended while it ran (its outcome is unknown)';
    if (result.exitCode !== undefined) return `exited with ${result.exitCode}`;
    if (result.signal) return `was killed by ${result.signal}`;
    return 'ended without an exit code (it could not start, or its output was cut off)';
  }
}

export interface RunnerOptions {
  /** Values every pattern may use (node, vbsHome, stateDir...). */
  readonly fixed?: Params;
  readonly env?: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
  /** At most this many commands run at once; the rest wait their turn (unbounded when absent). */
  readonly maxConcurrent?: number;
  /** Observes each argv before it runs (tests, logs). Secrets are never in it (pattern.ts refuses them there). */
  readonly onRun?: (key: string, argv: readonly string[]) => void;
  /**
   * Starts the commands in this helper process (src/commands/helper-client.ts),
   * off this process's event loop; without it, this process forks them itself.
   */
  readonly helper?: CommandHelper;
}

/**
 * Runs catalogued patterns: no shell, each command in its own process group,
 * and a timeout per command that kills the whole group, so a grandchild that
 * holds our pipes open cannot make a command outlive its limit.
 */
export class CommandRunner {
  private readonly slots?: Semaphore;

  constructor(
    readonly catalog: CommandCatalog,
    private readonly options: RunnerOptions = {},
  ) {
    if (options.maxConcurrent !== undefined) this.slots = new Semaphore(options.maxConcurrent);
  }

  async run(key: string, params: Params, variant?: string): Promise<CommandResult> {
    const pattern = this.catalog.pattern(key, variant);
    const all = { ...this.options.fixed, ...params };
    const { file, args } = fillPattern(pattern, all);
    const { input, env } = fillDelivery(this.catalog.delivery(pattern.key), all);
    const timeoutMs = Number(this.catalog.setting(`${key}.timeoutMs`) ?? this.options.timeoutMs ?? 120_000);
    const exec = async () => {
      this.options.onRun?.(key, [file, ...args]);
      const took = stopwatch();
      const group: GroupOptions = { timeoutMs, env: { ...this.options.env, ...env }, ...(input === undefined ? {} : { input }) };
      const result = this.options.helper ? await this.options.helper.run(file, args, group) : await runProcessGroup(file, args, group);
      hostCommandRan(key, result, took());
      return result;
    };
    const result = this.slots ? await this.slots.run(exec) : await exec();
    if (result.timedOut || result.lost || result.exitCode !== 0) {
      throw new CommandFailed(key, [file, ...args], {
        exitCode: result.exitCode,
        ...(result.signal ? { signal: result.signal } : {}),
        stderr: result.stderr || result.error || '',
        timedOut: result.timedOut,
        ...(result.lost ? { lost: true } : {}),
      });
    }
    return { stdout: result.stdout, stderr: result.stderr, exitCode: 0 };
  }
}
