import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { freePort } from '../core/free-port.js';
import type { Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { describeExit } from './service-process.js';
import { onPath } from '../core/on-path.js';

export interface RunningTgtd {
  readonly portal: string;
  readonly controlPort: number;
  readonly pid: number;
  /** Resolves once tgtd is gone, with how it ended. */
  readonly exited: Promise<string>;
  stop(): Promise<void>;
}

/** Where a tgtd listens: a restarted one keeps them, since configurations and VMM hosts name the portal. */
export interface TgtdPorts {
  readonly port: number;
  readonly controlPort: number;
}

/** True when a real tgtd can run here: installed, and we are root (it needs to be). */
export function canRunTgtd(): boolean {
  return process.getuid?.() === 0 && onPath('tgtd') && onPath('tgtadm');
}


/** A control port (tgtd takes 0..32767) no other tgtd on this host uses. */
function freeControlPort(): number {
  const dir = '/var/run/tgtd';
  const used = new Set(existsSync(dir) ? readdirSync(dir).map((f) => Number(/^socket\.(\d+)$/.exec(f)?.[1])) : []);
  for (let i = 0; i < 1000; i++) {
    const n = 10_000 + Math.floor(Math.random() * 22_000);
    if (!used.has(n)) return n;
  }
  throw new Error('no free tgtd control port');
}

/** Free ports for a new tgtd of the deployment's own. */
export async function freeTgtdPorts(): Promise<TgtdPorts> {
  return { port: await freePort(), controlPort: freeControlPort() };
}

/**
 * Starts a tgtd of the deployment's own on 127.0.0.1 and waits until tgtadm
 * reaches it. Stopping removes its targets (tgtd refuses to stop with
 * targets), asks it to stop, and kills it by its PID if it lingers. Its
 * output goes to `log`, which is left open (a restarted tgtd writes there too).
 */
export async function startTgtd(log: Writable, logFile: string, ports: TgtdPorts): Promise<RunningTgtd> {
  const { port, controlPort } = ports;
  const tgtd = ['tgtd', '-f', '-C', String(controlPort), '--iscsi', `portal=127.0.0.1:${port}`];
  // tgtd cannot watch a pipe as `vbs serve --exit-with-parent` does, so the
  // kernel ends it if `vbs up` dies without stopping it (util-linux setpriv
  // sets the parent-death signal, then becomes tgtd: same PID).
  const argv = onPath('setpriv') ? ['setpriv', '--pdeathsig', 'KILL', '--', ...tgtd] : tgtd;
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(log, { end: false });
  child.stderr!.pipe(log, { end: false });
  const exited = new Promise<string>((r) => {
    child.once('exit', (code, signal) => r(describeExit(code, signal)));
    // It could not be started at all (the exit event may never come).
    child.once('error', (err) => r(`could not run tgtd: ${err.message}`));
  });
  let gone = false;
  void exited.then(() => (gone = true));
  const tgtadm = (...args: string[]) => execFileSync('tgtadm', ['-C', String(controlPort), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const stop = async () => {
    if (gone || child.exitCode !== null || child.signalCode !== null) return;
    try {
      const show = tgtadm('--lld', 'iscsi', '--op', 'show', '--mode', 'target');
      for (const m of show.matchAll(/^Target (\d+):/gm)) tgtadm('--lld', 'iscsi', '--op', 'delete', '--mode', 'target', '--tid', m[1]!, '--force');
      tgtadm('--op', 'delete', '--mode', 'system');
    } catch {
      // it is killed below
    }
    const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
    await exited;
    clearTimeout(timer);
  };
  for (let attempt = 0; ; attempt++) {
    if (gone) throw new Error(`tgtd exited (${await exited}); see ${logFile}`);
    try {
      tgtadm('--lld', 'iscsi', '--op', 'show', '--mode', 'target');
      break;
    } catch {
      if (attempt >= 100) {
        await stop();
        throw new Error(`tgtd did not answer on control port ${controlPort}; see ${logFile}`);
      }
      await delay(100);
    }
  }
  return { portal: `127.0.0.1:${port}`, controlPort, pid: child.pid!, exited, stop };
}
