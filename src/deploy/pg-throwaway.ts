import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A throw-away PostgreSQL 15 cluster (the tests' and the bench's) from Debian's packages: initdb and pg_ctl
 * in a temporary folder, listening on a loopback port only (its socket in the
 * folder too), trust authentication (nothing but this machine reaches it).
 * As root the tools run as the `postgres` user (initdb refuses root); no
 * systemd is involved. fsync is off: a test cluster needs no durability.
 */
export const PG_BIN = process.env.VBS_PG_BIN ?? '/usr/lib/postgresql/15/bin';

export interface PgCluster {
  readonly dir: string;
  readonly port: number;
  /** postgres://postgres@127.0.0.1:PORT/postgres */
  readonly url: string;
}

const asRoot = process.getuid?.() === 0;

function pgTool(tool: string, args: string[], timeout = 60_000): string {
  const cmd = asRoot ? 'runuser' : join(PG_BIN, tool);
  const argv = asRoot ? ['-u', 'postgres', '--', join(PG_BIN, tool), ...args] : args;
  return execFileSync(cmd, argv, { encoding: 'utf8', timeout, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A port the kernel says is free on 127.0.0.1 now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export async function startCluster(): Promise<PgCluster> {
  if (!existsSync(join(PG_BIN, 'initdb'))) throw new Error(`PostgreSQL 15 is not installed (${PG_BIN}/initdb): apt-get install postgresql (scripts/install-deps.sh)`);
  const dir = mkdtempSync(join(tmpdir(), 'vbs-test-pg-'));
  chmodSync(dir, 0o700);
  if (asRoot) {
    const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, id('-u'), id('-g'));
  }
  // C collation: text sorts by bytes, as SQLite's does (ids and ISO times compare the same on both).
  pgTool('initdb', ['-D', join(dir, 'data'), '-U', 'postgres', '--auth=trust', '--locale=C', '--encoding=UTF8', '--no-sync'], 120_000);
  const port = await freePort();
  const cluster = { dir, port, url: `postgres://postgres@127.0.0.1:${port}/postgres` };
  startServer(cluster);
  return cluster;
}

/** Starts (or restarts) the cluster's server and waits until it accepts connections (pg_ctl -w). */
export function startServer(c: PgCluster): void {
  const opts = `-p ${c.port} -k ${c.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200`;
  pgTool('pg_ctl', ['-D', join(c.dir, 'data'), '-l', join(c.dir, 'log'), '-o', opts, '-w', '-t', '60', 'start'], 90_000);
}

/**
 * Stops the server: connections are cut at once, as when a database goes
 * away. Fast mode, not immediate: with synchronous_commit off (above), an
 * immediate stop may lose the last commits, which a real database would keep.
 */
export function stopServer(c: PgCluster): void {
  pgTool('pg_ctl', ['-D', join(c.dir, 'data'), '-m', 'fast', '-w', 'stop'], 60_000);
}

export function removeCluster(c: PgCluster): void {
  try {
    stopServer(c);
  } catch {
    // already stopped
  }
  rmSync(c.dir, { recursive: true, force: true });
}

/** A new, empty database in the cluster; its URL. */
export function createDatabase(c: PgCluster, name: string): string {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new RangeError(`not a database name: ${name}`);
  execFileSync(join(PG_BIN, 'createdb'), ['-h', '127.0.0.1', '-p', String(c.port), '-U', 'postgres', name], { timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
  return `postgres://postgres@127.0.0.1:${c.port}/${name}`;
}
