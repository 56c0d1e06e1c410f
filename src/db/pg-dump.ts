import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/**
 * A consistent copy of metadata kept in PostgreSQL, and putting one back
 * (issue 20; `vbs admin backup`/`restore` on SQLite use SQLite's online
 * backup). pg_dump reads in one snapshot while the fronts keep writing.
 * PostgreSQL 15's own tools (Debian's postgresql-client-15), run without a
 * shell; the password, if the URL has one, goes to them in PGPASSWORD, never
 * on their command line (where `ps` shows it) and never in an error message.
 */
const PG_BIN = process.env.VBS_PG_BIN ?? '/usr/lib/postgresql/15/bin';

/** The URL without its password, and the password for PGPASSWORD. */
function credentials(url: string): { dbname: string; env: NodeJS.ProcessEnv } {
  const u = new URL(url);
  const password = decodeURIComponent(u.password);
  u.password = '';
  return { dbname: u.toString(), env: password ? { ...process.env, PGPASSWORD: password } : process.env };
}

function run(tool: string, args: string[], url: string, timeoutMs: number): void {
  const { dbname, env } = credentials(url);
  try {
    execFileSync(join(PG_BIN, tool), [...args, '--dbname', dbname], { env, timeout: timeoutMs, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const stderr = String((err as { stderr?: Buffer }).stderr ?? '').trim();
    throw new Error(`${tool} failed: ${stderr.split('\n').slice(-3).join(' ') || (err as Error).message}`);
  }
}

/** Writes the database's copy to `file` (pg_dump's custom format). */
export function dumpPostgres(url: string, file: string, timeoutMs = 600_000): void {
  run('pg_dump', ['--format=custom', '--no-owner', '--file', file], url, timeoutMs);
}

/** Puts a copy back, replacing what the database holds, in one transaction (all or nothing). Stop the fronts first. */
export function restorePostgres(url: string, file: string, timeoutMs = 600_000): void {
  run('pg_restore', ['--clean', '--if-exists', '--no-owner', '--single-transaction', '--exit-on-error', file], url, timeoutMs);
}
