import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';

/**
 * What src/db/pg-dump.ts hands PostgreSQL's tools: the password in
 * PGPASSWORD and nowhere on the command line (where `ps` shows it), the URL
 * in a form libpq reads (a space in `options` as %20, not URLSearchParams'
 * '+'), and only the deployment's schema when the URL names one. The tool
 * here records what it was given and fails, as pg_dump does on a database it
 * cannot reach.
 */
const bin = mkdtempSync(join(tmpdir(), 'vbs-pg-argv-'));
const before = process.env.VBS_PG_BIN;
afterAll(() => {
  // The worker process may run other files next: they get the real tools.
  if (before === undefined) delete process.env.VBS_PG_BIN;
  else process.env.VBS_PG_BIN = before;
  rmSync(bin, { recursive: true, force: true });
});
writeFileSync(join(bin, 'pg_dump'), `#!/bin/sh\nprintf '%s\\n' "$@" > '${bin}/argv'\nprintf '%s' "$PGPASSWORD" > '${bin}/password'\necho 'pg_dump: error: connection refused' >&2\nexit 1\n`);
chmodSync(join(bin, 'pg_dump'), 0o755);
process.env.VBS_PG_BIN = bin;
const { dumpPostgres } = await import('../../src/db/pg-dump.js');

it('the password goes in PGPASSWORD only; the schema the URL names is the one dumped', async () => {
  const url = new URL('postgres://vbs:s3cret%2Fpw@127.0.0.1:5432/vbs');
  url.searchParams.set('options', '-c search_path=deploy_1');
  const failure = await dumpPostgres(url.toString(), join(bin, 'out.dump'), 30_000).then(() => undefined, (e: Error) => e);
  expect(failure?.message).toBe('pg_dump failed: pg_dump: error: connection refused');
  const argv = readFileSync(join(bin, 'argv'), 'utf8').trimEnd().split('\n');
  expect(argv.join(' ')).not.toContain('s3cret');
  expect(readFileSync(join(bin, 'password'), 'utf8')).toBe('s3cret/pw');
  expect(argv.slice(argv.indexOf('--schema'), argv.indexOf('--schema') + 2)).toEqual(['--schema', 'deploy_1']);
  expect(argv.at(-1)).toBe('postgres://vbs@127.0.0.1:5432/vbs?options=-c%20search_path%3Ddeploy_1');
});
