/**
 * The worker thread that owns the PostgreSQL connection (src/db/postgres.ts
 * posts it one request at a time and sleeps until it answers). It is a string
 * of plain JavaScript run with `eval: true`, so the same code runs from the
 * TypeScript sources (tests) and from dist/ without a loader; `pg` is loaded
 * from the path the main thread resolved.
 *
 * Requests: { id, op: 'query', text, values, lock } and { id, op: 'simple', text }
 * (several statements, no parameters), { id, op: 'close' }. `lock` asks for the
 * writers' advisory lock first: in an autocommit statement the worker wraps it
 * in BEGIN ... COMMIT; in a transaction it takes the lock once.
 *
 * Answers: { id, rows, rowCount } or { id, error: { message, code, unavailable } }.
 * `unavailable`: the database could not be reached or went away (no SQLSTATE,
 * or class 08/53/57P, or a lock or statement timeout): the connection is dropped and the next request makes a
 * new one, so service resumes when the database returns.
 */
export const PG_WORKER_SOURCE = String.raw`
const { workerData } = require('node:worker_threads');
const pg = require(workerData.pgPath);
const { port, flag, url, lockKey, statementTimeoutMs, connectTimeoutMs, applicationName } = workerData;

// Integers and numerics as numbers, booleans as 0/1: what better-sqlite3 returns.
pg.types.setTypeParser(20, (v) => Number(v));
pg.types.setTypeParser(1700, (v) => Number(v));
pg.types.setTypeParser(16, (v) => (v === 't' ? 1 : 0));

let client;
let inTx = false;
let locked = false;
// The connection was lost inside a transaction: until the main thread rolls it
// back, nothing may run (it would run outside the transaction, on a new connection).
let broken = false;

async function connection() {
  if (client) return client;
  const c = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: connectTimeoutMs,
    statement_timeout: statementTimeoutMs,
    lock_timeout: statementTimeoutMs,
    application_name: applicationName,
  });
  c.on('error', () => { if (client === c) client = undefined; });
  try {
    await c.connect();
  } catch (err) {
    c.end().catch(() => {});
    throw err;
  }
  client = c;
  return c;
}

function unavailable(err) {
  const code = err && typeof err.code === 'string' ? err.code : '';
  if (!/^[0-9A-Z]{5}$/.test(code)) return true;
  // 55P03 lock_timeout, 57014 statement_timeout: the database is too busy to answer in time (SQLite's SQLITE_BUSY).
  return code.startsWith('08') || code.startsWith('53') || code.startsWith('57P') || code === '55P03' || code === '57014';
}

async function handle(req) {
  if (req.op === 'close') {
    const c = client;
    client = undefined;
    if (c) await c.end().catch(() => {});
    return { rows: [], rowCount: 0 };
  }
  if (broken) {
    if (req.op === 'simple' && req.text.trim().toUpperCase() === 'ROLLBACK') {
      broken = false;
      return { rows: [], rowCount: 0 };
    }
    throw Object.assign(new Error('the connection to the database was lost in this transaction'), { code: '08006' });
  }
  const c = await connection();
  if (req.op === 'simple') {
    const r = await c.query(req.text);
    const last = Array.isArray(r) ? r[r.length - 1] : r;
    const t = req.text.trim().toUpperCase();
    if (t.startsWith('BEGIN')) { inTx = true; locked = t.includes('PG_ADVISORY_XACT_LOCK'); }
    if (t === 'COMMIT' || t === 'ROLLBACK') { inTx = false; locked = false; }
    return { rows: (last && last.rows) || [], rowCount: (last && last.rowCount) || 0 };
  }
  if (req.lock && !inTx) {
    await c.query('BEGIN');
    try {
      await c.query('SELECT pg_advisory_xact_lock(' + lockKey + ')');
      const r = await c.query(req.text, req.values);
      await c.query('COMMIT');
      return { rows: r.rows, rowCount: r.rowCount || 0 };
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      throw err;
    }
  }
  if (req.lock && !locked) {
    await c.query('SELECT pg_advisory_xact_lock(' + lockKey + ')');
    locked = true;
  }
  const r = await c.query(req.text, req.values);
  return { rows: r.rows, rowCount: r.rowCount || 0 };
}

let queue = Promise.resolve();
port.on('message', (req) => {
  queue = queue.then(async () => {
    let answer;
    try {
      answer = { id: req.id, ...(await handle(req)) };
    } catch (err) {
      const lost = unavailable(err);
      if (lost) {
        const c = client;
        client = undefined;
        if (inTx) broken = true;
        inTx = false;
        locked = false;
        if (c) c.end().catch(() => {});
      }
      answer = { id: req.id, error: { message: String((err && err.message) || err), code: err && err.code, unavailable: lost } };
    }
    port.postMessage(answer);
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
  });
});
`;
