import { execFileSync, spawn } from 'node:child_process';
import { createWriteStream, existsSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

export interface RunningTgtd {
  readonly portal: string;
  readonly controlPort: number;
  readonly pid: number;
  stop(): Promise<void>;
}

/** True when a real tgtd can run here: installed, and we are root (it needs to be). */
export function canRunTgtd(): boolean {
  if (process.getuid?.() !== 0) return false;
  return (process.env.PATH ?? '').split(delimiter).some((d) => d && existsSync(join(d, 'tgtd')) && existsSync(join(d, 'tgtadm')));
}

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => done(port));
    });
  });
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

/**
 * Starts a tgtd of the deployment's own on a free port of 127.0.0.1 and waits
 * until tgtadm reaches it. Stopping removes its targets (tgtd refuses to stop
 * with targets), asks it to stop, and kills it by its PID if it lingers.
 */
export async function startTgtd(logFile: string): Promise<RunningTgtd> {
  const port = await freePort();
  const controlPort = freeControlPort();
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn('tgtd', ['-f', '-C', String(controlPort), '--iscsi', `portal=127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const tgtadm = (...args: string[]) => execFileSync('tgtadm', ['-C', String(controlPort), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
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
    if (child.exitCode !== null) throw new Error(`tgtd exited with ${child.exitCode}; see ${logFile}`);
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
  return { portal: `127.0.0.1:${port}`, controlPort, pid: child.pid!, stop };
}
