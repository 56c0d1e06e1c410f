import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/**
 * A consistent copy of metadata kept in PostgreSQL, and putting one back
 * (issue 20; `vbs admin backup`/`restore`, src/db/backup.ts, call these for a
 * `postgres://` database). pg_dump reads in one snapshot while the fronts
 * keep writing. PostgreSQL 15's own tools (Debian's postgresql-client-15),
 * run without a shell and without blocking the caller's event loop (the
 * front keeps serving while it dumps); the password, if the URL has one,
 * goes to them in PGPASSWORD, never on their command line (where `ps` shows
 * it) and never in an error message.
 *
 * A URL whose `options` set `-c search_path=NAME` keeps VBS's tables in that
 * schema (several deployments in one database, as the tests do): only that
 * schema is dumped, and restored.
 */
const PG_BIN = process.env.VBS_PG_BIN ?? '/usr/lib/postgresql/15/bin';

/** The first bytes of pg_dump's custom format. */
export const PG_DUMP_MAGIC = 'PGDMP';

/** The URL without its password, and the password for PGPASSWORD. */
function credentials(url: string): { dbname: string; env: NodeJS.ProcessEnv } {
  const u = new URL(url);
  const password = decodeURIComponent(u.password);
  u.password = '';
  // libpq decodes %XX but not '+' (which URLSearchParams writes for a space, as in `options=-c+search_path=...`).
  const params = [...u.searchParams].map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
  u.search = params.length ? `?${params.join('&')}` : '';
  const env = { ...process.env };
  delete env.PGPASSWORD;
  if (password) env.PGPASSWORD = password;
  return { dbname: u.toString(), env };
}

/** The schema a URL's `options` put first in the search path (`-c search_path=NAME`), if any. */
export function schemaOf(url: string): string | undefined {
  const options = new URL(url).searchParams.get('options');
  if (!options) return undefined;
  const m = /(?:^|\s)(?:-c\s*|--)search_path=(\S+)/.exec(options);
  if (!m) return undefined;
  const first = m[1]!.split(',')[0]!;
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(first)) throw new RangeError('the search_path of the database URL is not a plain schema name');
  return first;
}

interface ToolRun {
  /** Called with each line the tool writes on its standard output. */
  readonly onLine?: (line: string) => void;
  readonly url?: string;
  readonly timeoutMs: number;
}

/** Runs one of PostgreSQL's tools; rejects with its last lines of stderr (never the password: it is not on the command line). */
function tool(name: string, args: string[], o: ToolRun): Promise<void> {
  const { dbname, env } = o.url ? credentials(o.url) : { dbname: undefined, env: process.env };
  const argv = dbname ? [...args, '--dbname', dbname] : args;
  return new Promise((resolve, reject) => {
    const child = spawn(join(PG_BIN, name), argv, { env, stdio: ['ignore', o.onLine ? 'pipe' : 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4_096)));
    if (o.onLine) createInterface({ input: child.stdout! }).on('line', o.onLine);
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs);
    const failed = (why: string) => new Error(`${name} failed: ${stderr.trim().split('\n').slice(-3).join(' ') || why}`);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(failed(err.message));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(failed(signal === 'SIGKILL' ? `no answer within ${o.timeoutMs} ms` : `exit ${code ?? signal}`));
    });
  });
}

/** Writes the database's copy (its VBS schema only, when the URL names one) to `file` (pg_dump's custom format). */
export async function dumpPostgres(url: string, file: string, timeoutMs = 600_000): Promise<void> {
  const schema = schemaOf(url);
  await tool('pg_dump', ['--format=custom', '--no-owner', '--file', file, ...(schema ? ['--schema', schema] : [])], { url, timeoutMs });
}

/** Puts a copy back, replacing what the database holds, in one transaction (all or nothing). Stop the fronts first. */
export async function restorePostgres(url: string, file: string, timeoutMs = 600_000): Promise<void> {
  await tool('pg_restore', ['--clean', '--if-exists', '--no-owner', '--single-transaction', '--exit-on-error', file], { url, timeoutMs });
}

/** The tables a dump holds (pg_restore --list reads the file alone, no database). */
export async function dumpedTables(file: string, timeoutMs = 60_000): Promise<Set<string>> {
  const tables = new Set<string>();
  // A table's line: "215; 1259 16390 TABLE public volumes postgres" (its data's is "TABLE DATA").
  const onLine = (line: string) => {
    const m = /^\d+; \d+ \d+ TABLE \S+ (\S+) /.exec(line);
    if (m) tables.add(m[1]!);
  };
  await tool('pg_restore', ['--list', file], { timeoutMs, onLine });
  return tables;
}

/** The rows a dump holds of one table, each as COPY's text (one line per row: newlines in values are escaped). */
export async function dumpedRows(file: string, table: string, each: (row: string) => void, timeoutMs = 600_000): Promise<void> {
  let inCopy = false;
  await tool('pg_restore', ['--data-only', '--table', table, '--file', '-', file], {
    timeoutMs,
    onLine: (line) => {
      if (!inCopy) inCopy = line.startsWith('COPY ');
      else if (line === '\\.') inCopy = false;
      else each(line);
    },
  });
}
