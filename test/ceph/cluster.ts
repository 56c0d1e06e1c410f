import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { inject } from 'vitest';
import { CEPH_SCRIPTS, testClusterDir, testClusterPort } from './where.js';

const run = promisify(execFile);
const HERE = import.meta.dirname;
/** rbd subcommands that change nothing, safe to run again. */
const RBD_READS = new Set(['ls', 'info', 'status', 'children', 'du']);

/** The shared test cluster, as a test file sees it. */
export interface CephCluster {
  dir: string;
  conf: string;
  adminKeyring: string;
  /** client.vbs's key file (`profile rbd` on every pool). */
  vbsKeyring: string;
  /** A fresh pool of this file's own, removed by release(). */
  pool: string;
  /** Runs `ceph` as client.admin (bounded); returns stdout. */
  ceph(...args: string[]): Promise<string>;
  /** Runs `rbd` as client.admin in this file's pool context (bounded); returns stdout. */
  rbd(...args: string[]): Promise<string>;
  /** Stops the OSD (by its pid file), and waits until the mon sees it down. */
  stopOsd(): Promise<void>;
  /** Starts the OSD again and waits for HEALTH_OK. */
  startOsd(): Promise<void>;
  /** Stops the mon: every client call then fails (after its timeout). */
  stopMon(): Promise<void>;
  startMon(): Promise<void>;
  /** Removes the pool and lets other files use the cluster again. */
  release(): Promise<void>;
}

/**
 * The host's one test cluster (started on first use, stopped at the end of
 * the run: global-setup.ts), with a pool of this file's own. Files share the
 * cluster under a shared lock; a file that stops daemons (`exclusive`) holds
 * the lock alone, so no other file sees its outage.
 */
export async function useCephCluster(o: { exclusive?: boolean } = {}): Promise<CephCluster> {
  const dir = testClusterDir();
  const holder = await holdLock(`${dir}.use.lock`, o.exclusive ?? false);
  try {
    // Generous: a start takes 15–30 s here, minutes on a machine loaded by other runs.
    // -o: the daemons ensure-cluster starts must not inherit the lock (they would hold it for their life).
    await run('flock', ['-o', '-w', '600', `${dir}.start.lock`, join(HERE, 'ensure-cluster.sh'), dir, String(testClusterPort()), inject('cephRun')], { timeout: 660_000 });
  } catch (err) {
    holder.kill();
    const e = err as { stderr?: string; code?: number };
    throw new Error(`the Ceph test cluster could not be started (exit ${e.code}; flock exits 1 when its wait ran out): ${e.stderr ?? ''}`);
  }
  const conf = join(dir, 'ceph.conf');
  const env = { ...process.env, CEPH_CONF: conf, CEPH_ARGS: '' };
  const ceph = async (...args: string[]) => (await run('ceph', ['--connect-timeout', '20', ...args], { env, timeout: 60_000 })).stdout;
  const rbdOnce = async (args: string[]) => (await run('rbd', ['--client_mount_timeout', '20', ...args], { env, timeout: 60_000 })).stdout;
  // Ceph 16's rbd sometimes aborts in librados' shutdown after its work is
  // done; a read is asked again (as the back end does: RbdTools.repeatable).
  const rbd = async (...args: string[]) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await rbdOnce(args);
      } catch (err) {
        const e = err as { signal?: string; killed?: boolean };
        if (!RBD_READS.has(args[0] ?? '') || !e.signal || e.killed || attempt >= 5) throw err;
      }
    }
  };
  const pool = `t${randomBytes(5).toString('hex')}`;
  await ceph('osd', 'pool', 'create', pool, '8', '8');
  await rbd('pool', 'init', pool);
  // `ceph df` lists a new pool only once the mgr has its stats (a moment later): until then the
  // back end's capacity look fails ("pool … is not in the cluster's report"), as a create just after would.
  await until(async () => {
    const df = JSON.parse(await ceph('df', '--format', 'json')) as { pools?: { name?: string }[] };
    return (df.pools ?? []).some((p) => p.name === pool);
  }, 60_000, `ceph df to list the pool ${pool}`);
  const pidOf = (name: string) => Number(readFileSync(join(dir, 'run', `ceph-${name}.pid`), 'utf8').trim());
  const stopDaemon = async (name: string) => {
    const pid = pidOf(name);
    if (!readFileSync(`/proc/${pid}/comm`, 'utf8').startsWith('ceph-')) throw new Error(`pid ${pid} is not ${name}`);
    process.kill(pid, 'SIGTERM');
    await until(async () => !alive(pid), 30_000, `${name} to stop`);
  };
  const healthOk = async () => (await ceph('health').catch(() => '')).trim() === 'HEALTH_OK';
  return {
    dir,
    conf,
    adminKeyring: join(dir, 'ceph.client.admin.keyring'),
    vbsKeyring: join(dir, 'ceph.client.vbs.keyring'),
    pool,
    ceph,
    rbd,
    async stopOsd() {
      await stopDaemon('osd.0');
      // Until the mon marks it down, clients still send to it; `ceph osd down` says so at once.
      await ceph('osd', 'down', '0').catch(() => undefined);
    },
    async startOsd() {
      await run('ceph-osd', ['--conf', conf, '-i', '0'], { env, timeout: 60_000 });
      await until(healthOk, 120_000, 'HEALTH_OK after the OSD restarted');
    },
    async stopMon() {
      await stopDaemon('mon.a');
    },
    async startMon() {
      await run('ceph-mon', ['--conf', conf, '-i', 'a'], { env, timeout: 60_000 });
      await until(healthOk, 120_000, 'HEALTH_OK after the mon restarted');
    },
    async release() {
      try {
        await ceph('osd', 'pool', 'rm', pool, pool, '--yes-i-really-really-mean-it');
      } finally {
        holder.kill();
      }
    },
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Polls `check` until it is true; bounded. */
export async function until(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Holds a flock (shared or exclusive) through a child process until kill(). */
async function holdLock(file: string, exclusive: boolean): Promise<{ kill(): void }> {
  const child: ChildProcess = spawn('flock', [exclusive ? '-x' : '-s', '-w', '900', file, process.execPath, join(HERE, 'hold-lock.mjs')], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`could not take ${file} (flock exited ${code})`)));
  });
  return { kill: () => child.stdin!.end() };
}
