import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { HelperMessage, HelperRequest } from './command-helper.js';
import { answerWithinMs, signalGroup, type GroupOptions, type GroupResult } from './process-group.js';

/**
 * A delegate's end of the command helper (src/commands/command-helper.ts):
 * host commands are started by a small process beside the delegate, so the
 * delegate's event loop never waits on a fork of its own heap. The helper
 * runs each command with runProcessGroup, under the same rules as before.
 *
 * When the helper ends (killed, crashed) the commands it was running have an
 * unknown outcome: each is answered `lost` (the runner's CommandFailed, never
 * a success), and its process group is killed, since nobody waits for it any
 * more, as a timeout would. The next command starts a new helper. A helper
 * that does not answer within the command's own bound (timeout, kill grace,
 * drain) plus a margin is taken for hung: killed, with the same outcome.
 */

/** Beyond a command's own bound, how long a busy helper may take to answer before it is taken for hung. */
const HUNG_MARGIN_MS = 10_000;

interface InFlight {
  readonly resolve: (r: GroupResult) => void;
  readonly guard: NodeJS.Timeout;
  pgid?: number;
}

/** The helper's script: beside this file when built; under the test runner (TypeScript sources) the build's copy. */
export function helperEntry(): string {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.js')) return join(dirname(here), 'command-helper.js');
  const built = resolve(dirname(here), '../../dist/commands/command-helper.js');
  if (!existsSync(built)) throw new Error(`the command helper is not built (${built}): run npm run build`);
  return built;
}

export class CommandHelper {
  private child: ChildProcess | undefined;
  private readonly inFlight = new Map<number, InFlight>();
  private nextId = 0;
  /** How many helpers this client started (tests: a restart after a death). */
  starts = 0;

  constructor(
    private readonly entry: string = helperEntry(),
    private readonly hungMarginMs: number = HUNG_MARGIN_MS,
  ) {}

  /** runProcessGroup, in the helper. */
  run(file: string, args: readonly string[], o: GroupOptions): Promise<GroupResult> {
    const child = this.ensure();
    const id = ++this.nextId;
    // The helper was started with this process's environment, which may have changed since: send the whole of it.
    const options: GroupOptions = { ...o, env: { ...definedOnly(process.env), ...o.env }, envIsComplete: true };
    delete (options as { onStart?: unknown }).onStart;
    const request: HelperRequest = { id, file, args, options };
    return new Promise((resolve) => {
      const guard = setTimeout(() => this.hung(child), answerWithinMs(o) + this.hungMarginMs);
      this.inFlight.set(id, { resolve, guard });
      child.stdin!.write(`${JSON.stringify(request)}\n`);
    });
  }

  /** The helper's process id, while one runs (tests). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Ends the helper (its running commands are lost, as on a death). */
  stop(): void {
    if (this.child) this.child.kill('SIGKILL');
  }

  private ensure(): ChildProcess {
    if (this.child) return this.child;
    // stderr is the delegate's: a helper that crashes says why in the delegate's log.
    const child = spawn(process.execPath, [this.entry], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.child = child;
    this.starts++;
    // The helper does not keep the delegate alive; a command in flight does (its guard timer).
    child.unref();
    (child.stdin as unknown as { unref?: () => void }).unref?.();
    (child.stdout as unknown as { unref?: () => void }).unref?.();
    child.stdin!.on('error', () => undefined); // EPIPE after a death: the exit handler answers
    createInterface({ input: child.stdout!, crlfDelay: Infinity }).on('line', (line) => this.received(line));
    // 'close' comes once its output is read to the end: a result written just before it died is not lost.
    child.once('close', () => this.ended(child));
    child.once('error', () => this.ended(child));
    return child;
  }

  private received(line: string): void {
    let m: HelperMessage;
    try {
      m = JSON.parse(line) as HelperMessage;
    } catch {
      return;
    }
    const f = this.inFlight.get(m.id);
    if (!f) return;
    if ('pgid' in m) {
      f.pgid = m.pgid;
      return;
    }
    clearTimeout(f.guard);
    this.inFlight.delete(m.id);
    f.resolve(m.result);
  }

  private hung(child: ChildProcess): void {
    if (this.child === child) child.kill('SIGKILL');
  }

  /** The helper is gone: what it ran has an unknown outcome; its groups are stopped. */
  private ended(child: ChildProcess): void {
    if (this.child !== child) return;
    this.child = undefined;
    for (const [id, f] of this.inFlight) {
      clearTimeout(f.guard);
      if (f.pgid !== undefined) signalGroup(f.pgid, 'SIGKILL');
      f.resolve({ stdout: '', stderr: '', timedOut: false, lost: true, error: 'the command helper ended while the command ran' });
      this.inFlight.delete(id);
    }
  }
}

function definedOnly(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  return out;
}

let shared: CommandHelper | undefined;

/** The process's one helper, started on first use. */
export function commandHelper(): CommandHelper {
  shared ??= new CommandHelper();
  return shared;
}
