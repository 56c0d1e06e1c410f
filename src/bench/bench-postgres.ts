import { randomBytes } from 'node:crypto';
import { isPostgresUrl, PostgresDb, redactUrl, validPostgresUrl } from '../db/postgres.js';
import { removeCluster, startCluster } from '../deploy/pg-throwaway.js';

/**
 * The PostgreSQL the control-plane bench measures the metadata on (issue 20):
 * one given in VBS_BENCH_DB (`npm run bench -- --db postgres://…` sets it;
 * a password is better left to ~/.pgpass or PGPASSWORD), in a schema of its
 * own that is dropped afterwards, so the given database is left as it was;
 * else a throw-away PostgreSQL 15 cluster started here on loopback, as the
 * tests start theirs (src/deploy/pg-throwaway.ts).
 */
export interface BenchPostgres {
  /** What the front is given (with its password, if any: never printed). */
  readonly url: string;
  /** What the bench prints about it. */
  readonly about: string;
  remove(): void;
}

export const BENCH_DB_ENV = 'VBS_BENCH_DB';

export async function benchPostgres(given = process.env[BENCH_DB_ENV]): Promise<BenchPostgres> {
  if (given) {
    if (!isPostgresUrl(given) || !validPostgresUrl(given)) throw new Error(`${BENCH_DB_ENV} must be a postgres:// URL naming a host and a database`);
    const schema = `vbs_bench_${randomBytes(6).toString('hex')}`;
    const admin = new PostgresDb(given);
    try {
      admin.exec(`CREATE SCHEMA ${schema}`);
    } finally {
      admin.close();
    }
    const url = new URL(given);
    url.searchParams.set('options', `-c search_path=${schema}`);
    return {
      url: url.toString(),
      about: `${redactUrl(given)}, schema ${schema}`,
      remove() {
        const db = new PostgresDb(given);
        try {
          db.exec(`DROP SCHEMA ${schema} CASCADE`);
        } finally {
          db.close();
        }
      },
    };
  }
  const cluster = await startCluster();
  return { url: cluster.url, about: `a throw-away PostgreSQL 15 on 127.0.0.1:${cluster.port}`, remove: () => removeCluster(cluster) };
}
