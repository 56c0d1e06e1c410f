import { spawn, type ChildProcess } from 'node:child_process';

export interface GroupOptions {
  /** The command, with everything it started, is stopped this long after it began. */
  readonly timeoutMs: number;
  readonly env?: Readonly<Record<string, string>>;
  /** `env` is the command's whole environment, not additions to this process's (the command helper gets the delegate's). */
  readonly envIsComplete?: boolean;
  /** Told the process group's id once the command started (the command helper reports it, so its client can kill the group). */
  readonly onStart?: (pgid: number) => void;
  /** Written to the command's standard input, which is then closed (otherwise it reads nothing: /dev/null). */
  readonly input?: string;
  /** Between SIGTERM and SIGKILL of the group, and again after SIGKILL before giving up waiting. */
  readonly killGraceMs?: number;
  /** After the command exits, how long its output may stay open (a grandchild holding the pipes). */
  readonly drainMs?: number;
  /** Bytes kept of each of stdout and stderr; more is a failure. */
  readonly maxBuffer?: number;
}

export interface GroupResult {
  readonly stdout: string;
  readonly stderr: string;
  /** The direct child's exit code; undefined when it was killed or never started. */
  readonly exitCode?: number;
  readonly timedOut: boolean;
  /** The signal that ended the direct child, when one did (and not our timeout). */
  readonly signal?: NodeJS.Signals;
  /** Why there is no exit code (could not start, killed by a signal, too much output). */
  readonly error?: string;
  /** Whoever ran the command (the command helper) ended while it ran: it may have acted, its outcome is unknown. */
  readonly lost?: boolean;
}

const DEFAULT_GRACE_MS = 2_000;
const DEFAULT_DRAIN_MS = 500;
const DEFAULT_MAX_BUFFER = 4 * 1024 * 1024;

/** The longest runProcessGroup takes to answer with options `o`, whatever the command does. */
export function answerWithinMs(o: GroupOptions): number {
  return o.timeoutMs + 2 * (o.killGraceMs ?? DEFAULT_GRACE_MS) + (o.drainMs ?? DEFAULT_DRAIN_MS);
}

/** Groups still running, killed if this process exits first (a clean exit; SIGKILL cannot be caught). */
const live = new Set<number>();
let exitHookInstalled = false;
function trackGroup(pgid: number): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const g of live) signalGroup(g, 'SIGKILL');
    });
  }
  live.add(pgid);
}

export function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: nothing of the group is left
  }
}

/**
 * Runs `file args` (no shell) as the leader of a new process group and
 * resolves within timeoutMs + 2 × killGraceMs whatever the command does:
 * when the timeout fires the whole group gets SIGTERM, then SIGKILL, and we
 * stop waiting for pipes that something outside the group may still hold.
 * Waiting for the pipes to close (as execa does) is what let a grandchild
 * such as `sleep 30` holding stdout keep a command running past its limit.
 */
export function runProcessGroup(file: string, args: readonly string[], o: GroupOptions): Promise<GroupResult> {
  const grace = o.killGraceMs ?? DEFAULT_GRACE_MS;
  const drain = o.drainMs ?? DEFAULT_DRAIN_MS;
  const maxBuffer = o.maxBuffer ?? DEFAULT_MAX_BUFFER;
  return new Promise((resolve) => {
    let child: ChildProcess;
    try {
      const env = o.envIsComplete ? { ...o.env } : { ...process.env, ...o.env };
      child = spawn(file, [...args], { detached: true, stdio: [o.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env });
    } catch (err) {
      resolve({ stdout: '', stderr: '', timedOut: false, error: `could not start ${file}: ${(err as Error).message}` });
      return;
    }
    const pgid = child.pid;
    if (pgid !== undefined) {
      trackGroup(pgid);
      o.onStart?.(pgid);
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    let exited = false;
    let exitCode: number | undefined;
    let killedBy: NodeJS.Signals | undefined;
    let error: string | undefined;
    let timedOut = false;
    let done = false;
    const timers: NodeJS.Timeout[] = [];
    const later = (ms: number, f: () => void) => timers.push(setTimeout(f, ms));

    const finish = () => {
      if (done) return;
      done = true;
      for (const t of timers) clearTimeout(t);
      if (pgid !== undefined) live.delete(pgid);
      child.stdout?.destroy();
      child.stderr?.destroy();
      resolve({
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        exitCode: timedOut ? undefined : exitCode,
        timedOut,
        ...(killedBy && !timedOut ? { signal: killedBy } : {}),
        ...(error ? { error } : {}),
      });
    };

    /** SIGTERM to the group, SIGKILL after the grace, then answer once the child is gone (bounded). */
    const stopGroup = () => {
      if (pgid === undefined) return finish();
      signalGroup(pgid, 'SIGTERM');
      later(grace, () => {
        signalGroup(pgid, 'SIGKILL');
        if (exited) return finish();
        // A child in uninterruptible sleep may not die at once: stop waiting for it anyway.
        later(grace, finish);
      });
    };

    const collect = (chunks: Buffer[], add: (n: number) => number) => (chunk: Buffer) => {
      if (done) return;
      if (add(chunk.length) > maxBuffer) {
        if (!error) {
          error = `${file} wrote more than ${maxBuffer} bytes of output`;
          exitCode = undefined;
          stopGroup();
        }
        return;
      }
      chunks.push(chunk);
    };
    child.stdout!.on('data', collect(out, (n) => (outBytes += n)));
    child.stderr!.on('data', collect(err, (n) => (errBytes += n)));
    if (o.input !== undefined && child.stdin) {
      // A command that exits without reading (EPIPE) is judged by its exit code, not by this write.
      child.stdin.on('error', () => undefined);
      child.stdin.end(o.input);
    }
    child.stdout!.on('error', () => undefined);
    child.stderr!.on('error', () => undefined);

    child.once('error', (e) => {
      // Could not start (ENOENT, EACCES): there is no process to wait for.
      error = `could not start ${file}: ${e.message}`;
      finish();
    });
    child.once('exit', (code, signal) => {
      exited = true;
      if (!error && !timedOut) {
        exitCode = code ?? undefined;
        if (code === null) {
          killedBy = signal ?? undefined;
          error = `${file} was killed by ${signal ?? 'a signal'}`;
        }
      }
      if (timedOut || error) return; // stopGroup answers
      // Whatever still holds our pipes is a leftover of this command: a moment to flush, then it goes.
      // The answer still waits for 'close': the pipes close once the group is gone, after what was
      // written is read. Answering at once would hand back output this busy process has not read yet
      // (an empty listing read as "no disks" made a detach a no-op). No close after the grace: a
      // failure, never a short success.
      later(drain, () => {
        if (pgid !== undefined) signalGroup(pgid, 'SIGKILL');
        later(grace, () => {
          if (done) return;
          error = `${file} exited, but its output did not close within ${drain + grace} ms`;
          exitCode = undefined;
          finish();
        });
      });
    });
    // 'close' comes after 'exit', once every pipe is closed: nothing more to wait for.
    child.once('close', finish);

    later(o.timeoutMs, () => {
      if (done) return;
      timedOut = true;
      stopGroup();
    });
  });
}
