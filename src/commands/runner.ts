import { execa } from 'execa';
import { VbsError } from '../core/errors.js';
import type { CommandCatalog } from './catalog.js';
import { fillPattern, type Params } from './pattern.js';

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
    readonly result: { exitCode?: number; stderr: string; timedOut: boolean },
  ) {
    const why = result.timedOut
      ? 'timed out'
      : `exited with ${result.exitCode ?? 'no code'}${result.stderr ? `: ${lastLine(result.stderr)}` : ''}`;
    super('OperationFailed', `${key} ${why}`);
  }
}

function lastLine(s: string): string {
  const lines = s.trim().split('\n');
  return (lines[lines.length - 1] ?? '').slice(0, 300);
}

export interface RunnerOptions {
  /** Values every pattern may use (node, vbsHome, stateDir...). */
  readonly fixed?: Params;
  readonly env?: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
  /** Observes each argv before it runs (tests, logs). */
  readonly onRun?: (key: string, argv: readonly string[]) => void;
}

/**
 * Runs catalogued patterns with execa: no shell, a timeout per command, and the
 * whole process group killed on timeout so a stuck grandchild cannot hold us.
 */
export class CommandRunner {
  constructor(
    readonly catalog: CommandCatalog,
    private readonly options: RunnerOptions = {},
  ) {}

  async run(key: string, params: Params, variant?: string): Promise<CommandResult> {
    const pattern = this.catalog.pattern(key, variant);
    const { file, args } = fillPattern(pattern, { ...this.options.fixed, ...params });
    this.options.onRun?.(key, [file, ...args]);
    const timeoutMs = Number(this.catalog.setting(`${key}.timeoutMs`) ?? this.options.timeoutMs ?? 120_000);
    const child = execa(file, args, {
      reject: false,
      timeout: timeoutMs,
      env: this.options.env,
      extendEnv: true,
      stdin: 'ignore',
      detached: true,
      forceKillAfterDelay: 2000,
      maxBuffer: 4 * 1024 * 1024,
      cleanup: true,
    });
    const result = await child;
    if (result.timedOut && child.pid) killGroup(child.pid);
    if (result.failed || result.exitCode !== 0) {
      throw new CommandFailed(key, [file, ...args], {
        exitCode: result.exitCode,
        stderr: String(result.stderr ?? '') || (result.failed && result.exitCode === undefined ? String(result.shortMessage ?? '') : ''),
        timedOut: Boolean(result.timedOut),
      });
    }
    return { stdout: String(result.stdout ?? ''), stderr: String(result.stderr ?? ''), exitCode: 0 };
  }
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}
