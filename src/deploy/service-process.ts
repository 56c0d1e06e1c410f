import { spawn, type ChildProcess } from 'node:child_process';
import type { Writable } from 'node:stream';
import { createInterface } from 'node:readline';

/** One running process of a supervised service. */
export interface ServiceHandle {
  readonly pid: number;
  /** Where it accepts requests, when it says. */
  readonly url?: string;
  /** Resolves once the process is gone, with how it ended ("exit code 1", "signal SIGKILL"). */
  readonly exited: Promise<string>;
  /** Asks it to stop (SIGTERM), kills it if it lingers, and resolves once it is gone. */
  stop(): Promise<void>;
}

export interface ServeOptions {
  readonly cli: string;
  readonly role: string;
  readonly configFile: string;
  readonly cwd: string;
  /** Receives the service's stderr (its log); never ended here, since every restart writes to it. */
  readonly log: Writable;
  /** Where the operator finds that log, for messages. */
  readonly logFile: string;
  readonly readyTimeoutMs: number;
  /** Node options before the CLI (profiling: `--cpu-prof`); none by default. */
  readonly nodeArgs?: readonly string[];
  readonly stopTimeoutMs?: number;
}

export function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `signal ${signal}` : `exit code ${code}`;
}

/**
 * Starts `vbs serve <role>` and resolves once it prints its ready line. It
 * runs with `--exit-with-parent` on a stdin pipe that only closes when `vbs up`
 * is gone, however it ended, so no service outlives the supervisor.
 */
export function startServe(o: ServeOptions, abort?: AbortSignal): Promise<ServiceHandle> {
  const child = spawn(process.execPath, [...(o.nodeArgs ?? []), o.cli, 'serve', o.role, '--config', o.configFile, '--exit-with-parent'], {
    cwd: o.cwd,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stderr!.pipe(o.log, { end: false });
  // A pipe to a child that died is not our failure.
  child.stdin!.on('error', () => {});
  const exited = new Promise<string>((r) => child.once('exit', (code, signal) => r(describeExit(code, signal))));
  const stop = () => stopProcess(child, o.stopTimeoutMs ?? 10_000);
  return new Promise((resolveReady, reject) => {
    let settled = false;
    const settle = () => {
      settled = true;
      clearTimeout(timer);
      abort?.removeEventListener('abort', onAbort);
    };
    const timer = setTimeout(() => {
      if (settled) return;
      settle();
      child.kill('SIGKILL');
      reject(new Error(`${o.role} was not ready within ${o.readyTimeoutMs / 1000} s; see ${o.logFile}`));
    }, o.readyTimeoutMs);
    // Stopping while it starts: it must not be left running.
    const onAbort = () => {
      if (settled) return;
      settle();
      void stop().then(() => reject(new Error(`${o.role} was stopped while starting`)));
    };
    if (abort?.aborted) onAbort();
    else abort?.addEventListener('abort', onAbort, { once: true });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let msg: { ready?: unknown };
      try {
        msg = JSON.parse(line) as { ready?: unknown };
      } catch {
        return; // not a control line
      }
      if (settled || typeof msg.ready !== 'string') return;
      settle();
      resolveReady({ pid: child.pid!, url: msg.ready, exited, stop });
    });
    void exited.then((how) => {
      if (settled) return;
      settle();
      reject(new Error(`${o.role} exited (${how}) before it was ready; see ${o.logFile}`));
    });
  });
}

export function stopProcess(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolveStop) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolveStop();
    });
    child.kill('SIGTERM');
  });
}
