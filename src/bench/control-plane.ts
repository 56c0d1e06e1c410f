import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { VbsError } from '../core/errors.js';
import { VBS_HOME } from '../core/paths.js';
import { openDatabase, type Db } from '../db/database.js';
import { benchPostgres } from './bench-postgres.js';
import { VBS_SERVICE } from '../services/vbs.js';
import { SoapClient } from '../soap/client.js';
import type { Record as XmlRecord } from '../soap/xml.js';
import { SoakDeployment, writeThinCommands } from '../soak/deployment.js';
import { profilePhase, type Phase } from './profile-run.js';
import { formatSideBySide, formatTable, jsonReport, latencyRows, summarize, type Row } from './stats.js';
import { benchFolder } from './folder.js';

/**
 * The control-plane bench (`npm run bench`, after the data-path benches): a
 * real `vbs up` (its own processes, mutual TLS, real files; blank volumes thin
 * with truncate so a run does not fill the disk), driven with the project's
 * keep-alive SOAP client. As root the deployment lives on an XFS loop mount
 * with reflink, so snapshots and clones are copy-on-write. It prints one
 * table, each result beside its target, and writes bench/results/latest.json.
 * It ends only the processes it started (its `vbs up`) and removes its folder.
 */

const GiB = 1024 ** 3;
/** Clients a SoapClient's agent serves at once (its maxSockets): more concurrency needs more clients. */
const SOCKETS_PER_CLIENT = 16;
/** How often a waiting client asks again; the latencies are this coarse. */
const POLL_MS = 5;
/** With 32 clients waiting at once, asking less often keeps the asking from being the load. */
const RATE_POLL_MS = 20;
const WAIT_LIMIT_MS = 120_000;
const RATE_SECONDS = 10;
const RATE_CLIENTS = 32;
const LEVELS = [1, 8, 64] as const;
const OPS_PER_LEVEL: Readonly<Record<number, number>> = { 1: 20, 8: 48, 64: 128 };

const say = (line: string) => process.stdout.write(`${line}\n`);

/** Round-robin over enough clients for the concurrency asked. */
class Clients {
  private next = 0;
  constructor(private readonly all: SoapClient[]) {}
  /**
   * Calls cut before an answer (ServiceUnavailable): a Describe, or a create
   * (it carries a client token, so asking again cannot make a second one),
   * is asked again, as the CLI does; each time is counted and reported.
   */
  retried = 0;
  async call(operation: string, input: XmlRecord): Promise<XmlRecord> {
    const c = this.all[this.next++ % this.all.length]!;
    const safe = operation.startsWith('Describe') || operation.startsWith('Create');
    const sent = operation.startsWith('Create') ? { ...input, clientToken: randomUUID() } : input;
    for (let attempt = 1; ; attempt++) {
      try {
        return await c.call(operation, sent, 60_000);
      } catch (err) {
        if (!(safe && err instanceof VbsError && err.code === 'ServiceUnavailable') || attempt === 3) throw err;
        this.retried++;
      }
    }
  }

  close(): void {
    for (const c of this.all) c.close();
  }
}

function clientsFor(dir: string, url: string, concurrency: number): Clients {
  const tls = { key: readFileSync(join(dir, 'pki', 'admin.key')), cert: readFileSync(join(dir, 'pki', 'admin.crt')), ca: readFileSync(join(dir, 'pki', 'ca.crt')) };
  const n = Math.max(1, Math.ceil(concurrency / SOCKETS_PER_CLIENT));
  return new Clients(Array.from({ length: n }, () => new SoapClient({ def: VBS_SERVICE, url, tls })));
}

/** Polls until `done` says the record is there (or gone); bounded. */
async function until(check: () => Promise<boolean>, what: string, every = POLL_MS): Promise<void> {
  const end = Date.now() + WAIT_LIMIT_MS;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`${what}: not reached within ${WAIT_LIMIT_MS / 1000} s`);
    await delay(every);
  }
}

async function volume(api: Clients, id: string): Promise<XmlRecord | undefined> {
  try {
    return ((await api.call('DescribeVolumes', { volumeId: [id] })).volume as XmlRecord[])[0];
  } catch (err) {
    if (err instanceof VbsError && err.code === 'InvalidVolume.NotFound') return undefined;
    throw err;
  }
}

async function volumeReaches(api: Clients, id: string, status: string, every = POLL_MS): Promise<void> {
  await until(
    async () => {
      const v = await volume(api, id);
      if (v?.status === 'error') throw new Error(`${id} went to error: ${String(v.statusMessage)}`);
      return v?.status === status;
    },
    `${id} ${status}`,
    every,
  );
}

async function snapshotCompletes(api: Clients, id: string): Promise<void> {
  await until(async () => {
    const s = ((await api.call('DescribeSnapshots', { snapshotId: [id] })).snapshot as XmlRecord[])[0];
    if (s?.status === 'error') throw new Error(`${id} went to error: ${String(s.statusMessage)}`);
    return s?.status === 'completed';
  }, `${id} completed`);
}

const ATTACHES = 10;

/** Attaches the volume to a VM (vm1) of `localhost` and detaches it, `n` times; each latency until the record says so. */
async function attachDetach(c: Clients, volumeId: string, device: string, n: number, vmId = 'vm1'): Promise<{ attachSamples: number[]; detachSamples: number[] }> {
  const attachSamples: number[] = [];
  const detachSamples: number[] = [];
  for (let i = 0; i < n; i++) {
    let t = process.hrtime.bigint();
    await c.call('AttachVolume', { volumeId, vmmHost: 'localhost', vmId, device });
    await until(async () => ((await volume(c, volumeId))?.attachments as XmlRecord[] | undefined)?.[0]?.status === 'attached', 'attached');
    attachSamples.push(ms(t));
    t = process.hrtime.bigint();
    await c.call('DetachVolume', { volumeId });
    await until(async () => ((await volume(c, volumeId))?.attachments as XmlRecord[] | undefined)?.length === 0, 'detached');
    detachSamples.push(ms(t));
  }
  return { attachSamples, detachSamples };
}

/** Runs `ops` operations with `concurrency` at once; each returns its latency in ms. */
async function latencies(concurrency: number, ops: number, op: (i: number) => Promise<number>): Promise<number[]> {
  const out: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < ops) out.push(await op(next++));
    }),
  );
  return out;
}

const ms = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;

/** Real bytes in a volume file (not zeros), so a copy cannot skip them as holes. */
function fill(file: string, bytes: number): void {
  const chunk = Buffer.alloc(8 * 1024 * 1024);
  for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((i * 2654435761) >>> 0, i);
  const fd = openSync(file, 'r+');
  try {
    for (let off = 0; off < bytes; off += chunk.length) writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - off), off);
  } finally {
    closeSync(fd);
  }
  execFileSync('sync', ['-f', file]);
}

/** Rows straight into the metadata while the front is stopped: this measures queries, not creates. */
function loadVolumes(dbFile: string, owner: string, count: number, startAt: number): void {
  // A path: SQLite as the front opens it; a postgres:// URL: PostgreSQL.
  const db: Db = dbFile.startsWith('postgres') ? openDatabase(dbFile) : (new Database(dbFile) as unknown as Db);
  try {
    const id = db.prepare(`INSERT INTO ids (id, kind, created_at) VALUES (?, 'vol', ?)`);
    const vol = db.prepare(`INSERT INTO volumes (volume_id, owner, size_gib, comment, status, delegate, create_time) VALUES (?, ?, 1, ?, 'available', 'local', ?)`);
    const base = Date.UTC(2025, 0, 1);
    db.transaction(() => {
      for (let i = startAt; i < startAt + count; i++) {
        const volumeId = `vol-b${i.toString(16).padStart(16, '0')}`;
        const t = new Date(base + i * 10).toISOString();
        id.run(volumeId, t);
        vol.run(volumeId, owner, `loaded ${i}`, t);
      }
    })();
  } finally {
    db.close();
  }
}

function countVolumes(dbFile: string): number {
  const db: Db = dbFile.startsWith('postgres') ? openDatabase(dbFile) : (new Database(dbFile, { readonly: true }) as unknown as Db);
  try {
    return (db.prepare('SELECT count(*) AS n FROM volumes').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

function rssMiB(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  const m = /^VmRSS:\s+([0-9]+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

function timeCommand(cmd: string, args: string[], runs: number, after: () => void): number[] {
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = process.hrtime.bigint();
    execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    out.push(ms(t));
    after();
  }
  return out;
}

/**
 * The metadata on SQLite and on PostgreSQL, side by side (issue 20): the same
 * `vbs up` and the same calls, once per engine, the PostgreSQL a throw-away
 * cluster on loopback (src/deploy/pg-throwaway.ts). What the database changes:
 * each query is a round trip to another process through the front's
 * synchronous bridge (src/db/postgres.ts) instead of a call into SQLite.
 */
async function databaseRows(where: { dir: string }, commands: string): Promise<Row[]> {
  const rows: Row[] = [];
  for (const engine of ['sqlite', 'postgres'] as const) {
    const dir = join(where.dir, `db-${engine}`);
    mkdirSync(dir);
    const pg = engine === 'postgres' ? await benchPostgres() : undefined;
    const target = pg ? pg.url : join(dir, 'vbs.db');
    let dep: SoakDeployment | undefined;
    let c: Clients | undefined;
    const start = async () => {
      dep = await SoakDeployment.start({ dir, backend: 'file', commands, stderrFile: join(where.dir, `vbs-up-${engine}.log`), ...(pg ? { db: pg.url } : {}) });
      c = clientsFor(dir, dep.url, 8);
      return c;
    };
    const stop = async () => {
      c?.close();
      c = undefined;
      await dep?.stop();
      dep = undefined;
    };
    try {
      let api = await start();
      say(`  metadata on ${engine}${pg ? ` (${pg.about})` : ''}`);
      for (const level of [1, 8] as const) {
        const samples = await latencies(level, OPS_PER_LEVEL[level]!, async (i) => {
          const t = process.hrtime.bigint();
          const v = (await api.call('CreateVolume', { size: 1, comment: `db ${level} ${i}` })).volume as XmlRecord;
          if (v.status !== 'available') await volumeReaches(api, String(v.volumeId), 'available');
          return ms(t);
        });
        const s = summarize(samples);
        rows.push({ metric: `[${engine}] blank create→available p50, concurrency ${level}`, value: s.p50, unit: 'ms', note: `p99 ${s.p99.toFixed(1)} ms, ${s.n} creates` });
      }
      const vol = String(((await api.call('CreateVolume', { size: 1, comment: 'attach' })).volume as XmlRecord).volumeId);
      await volumeReaches(api, vol, 'available');
      const attach: number[] = [];
      for (let i = 0; i < 10; i++) {
        const t = process.hrtime.bigint();
        await api.call('AttachVolume', { volumeId: vol, vmmHost: 'localhost', vmId: 'vm1', device: 'xvdb' });
        await until(async () => ((await volume(api, vol))?.attachments as XmlRecord[] | undefined)?.[0]?.status === 'attached', 'attached');
        attach.push(ms(t));
        await api.call('DetachVolume', { volumeId: vol });
        await until(async () => ((await volume(api, vol))?.attachments as XmlRecord[] | undefined)?.length === 0, 'detached');
      }
      const sa = summarize(attach);
      rows.push({ metric: `[${engine}] attach→attached p50 (simulator)`, value: sa.p50, unit: 'ms', note: `p99 ${sa.p99.toFixed(1)} ms, ${sa.n} attaches` });
      await stop();
      loadVolumes(target, 'admin', 1_000 - countVolumes(target), 0);
      api = await start();
      const ids = (await api.call('DescribeVolumes', { maxResults: 1000 })).volume as XmlRecord[];
      const one: number[] = [];
      for (let i = 0; i < 200; i++) {
        const t = process.hrtime.bigint();
        await api.call('DescribeVolumes', { volumeId: [String(ids[(i * 37) % ids.length]!.volumeId)] });
        one.push(ms(t));
      }
      const so = summarize(one.slice(20));
      rows.push({ metric: `[${engine}] DescribeVolumes one id p50, 1,000 volumes`, value: so.p50, unit: 'ms', note: `p99 ${so.p99.toFixed(2)} ms, ${so.n} calls` });
      const pages: number[] = [];
      for (let i = 0; i < 20; i++) {
        const t = process.hrtime.bigint();
        await api.call('DescribeVolumes', { maxResults: 1000 });
        pages.push(ms(t));
      }
      const sp = summarize(pages.slice(3));
      rows.push({ metric: `[${engine}] DescribeVolumes page of 1,000 p50`, value: sp.p50, unit: 'ms', note: `p99 ${sp.p99.toFixed(1)} ms, ${sp.n} pages` });
      for (const r of rows.filter((x) => x.metric.startsWith(`[${engine}]`))) say(`  ${r.metric}: ${r.value.toFixed(2)} ${r.unit}`);
    } finally {
      await stop();
      pg?.remove();
    }
  }
  return rows;
}

/** `VBS_BENCH_ONLY=databases`: only the side-by-side of the two metadata engines. */
async function databasesOnly(): Promise<number> {
  const where = benchFolder();
  const commands = join(where.dir, 'commands.properties');
  writeThinCommands(commands);
  const started = Date.now();
  try {
    say(`control-plane bench, metadata engines side by side: ${cpus().length} cores, ${Math.round(totalmem() / GiB)} GiB memory`);
    const rows = await databaseRows(where, commands);
    say('');
    say(formatSideBySide(rows));
    const out = resolve(VBS_HOME, 'bench', 'results');
    mkdirSync(out, { recursive: true });
    const about = { date: new Date().toISOString(), machine: `${cpus().length} cores`, fileSystem: where.fs, seconds: Math.round((Date.now() - started) / 1000), notes: ['metadata engines side by side: the same vbs up and calls on SQLite and on PostgreSQL 15 (loopback)'] };
    writeFileSync(join(out, 'databases.json'), jsonReport(rows, about));
    return 0;
  } finally {
    where.cleanup();
  }
}

async function main(): Promise<number> {
  if (process.env.VBS_BENCH_ONLY === 'databases') return databasesOnly();
  const where = benchFolder();
  const dir = join(where.dir, 'deployment');
  mkdirSync(dir);
  const commands = join(where.dir, 'commands.properties');
  writeThinCommands(commands);
  const rows: Row[] = [];
  /** Keeps rows for the table and says them as they come, so a long run shows progress. */
  const report = (more: Row[]) => {
    rows.push(...more);
    for (const r of more) say(`  ${r.metric}: ${r.value.toFixed(1)} ${r.unit}`);
  };
  const started = Date.now();
  let dep: SoakDeployment | undefined;
  let api: Clients | undefined;
  const start = async () => {
    dep = await SoakDeployment.start({ dir, backend: 'file', commands, stderrFile: join(where.dir, 'vbs-up.log') });
    api = clientsFor(dir, dep.url, 64);
    return { dep, api };
  };
  let retried = 0;
  const stop = async () => {
    retried += api?.retried ?? 0;
    api?.close();
    api = undefined;
    await dep?.stop();
    dep = undefined;
  };
  const onSignal = () => void stop().finally(() => (where.cleanup(), process.exit(130)));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    say(`control-plane bench: vbs up on ${where.fs}, blank volumes thin (truncate), ${cpus().length} cores, ${Math.round(totalmem() / GiB)} GiB memory`);
    let { api: c } = await start();

    // --- create → available, blank -------------------------------------------
    for (const level of LEVELS) {
      const samples = await latencies(level, OPS_PER_LEVEL[level]!, async (i) => {
        const t = process.hrtime.bigint();
        const v = (await c.call('CreateVolume', { size: 1, comment: `blank ${level} ${i}` })).volume as XmlRecord;
        if (v.status !== 'available') await volumeReaches(c, String(v.volumeId), 'available');
        return ms(t);
      });
      const target = level === 1 ? { limit: 20, atMost: true } : level === 8 ? { limit: 60, atMost: true } : undefined;
      report(latencyRows(`blank create→available, concurrency ${level}`, samples, 'creates', target));
    }

    // --- snapshot → completed and clone → available of a 1 GiB volume ----------
    const source = (await c.call('CreateVolume', { size: 1, comment: 'source' })).volume as XmlRecord;
    const sourceId = String(source.volumeId);
    await volumeReaches(c, sourceId, 'available');
    fill(join(dir, 'volumes', `${sourceId}.img`), GiB);
    const snapLevels = where.reflink ? LEVELS : ([1, 8] as const);
    let cloneFrom = '';
    for (const level of snapLevels) {
      const ops = where.reflink ? OPS_PER_LEVEL[level]! : level;
      const snaps: string[] = [];
      const samples = await latencies(level, ops, async () => {
        const t = process.hrtime.bigint();
        const s = (await c.call('CreateSnapshot', { volumeId: sourceId, comment: 'bench' })).snapshot as XmlRecord;
        if (s.status !== 'completed') await snapshotCompletes(c, String(s.snapshotId));
        snaps.push(String(s.snapshotId));
        return ms(t);
      });
      report(latencyRows(`1 GiB snapshot→completed, concurrency ${level}`, samples, 'snapshots', level === 1 && where.reflink ? { limit: 50, atMost: true } : undefined));
      cloneFrom = snaps[0]!;
      for (const id of snaps.slice(1)) await c.call('DeleteSnapshot', { snapshotId: id });
    }
    for (const level of snapLevels) {
      const ops = where.reflink ? OPS_PER_LEVEL[level]! : level;
      const clones: string[] = [];
      const samples = await latencies(level, ops, async () => {
        const t = process.hrtime.bigint();
        const v = (await c.call('CreateVolume', { size: 1, comment: 'clone', snapshotId: cloneFrom })).volume as XmlRecord;
        if (v.status !== 'available') await volumeReaches(c, String(v.volumeId), 'available');
        clones.push(String(v.volumeId));
        return ms(t);
      });
      report(latencyRows(`1 GiB clone→available, concurrency ${level}`, samples, 'clones', level === 1 && where.reflink ? { limit: 50, atMost: true } : undefined));
      await Promise.all(clones.map((volumeId) => c.call('DeleteVolume', { volumeId })));
    }

    // --- sustained creates and deletes, 32 clients ------------------------------
    // Each client creates, waits until the volume is available, and goes on:
    // at most 32 in flight, as 32 real clients would be.
    const made: string[] = [];
    const createStart = process.hrtime.bigint();
    const rateEnd = Date.now() + RATE_SECONDS * 1000;
    await Promise.all(
      Array.from({ length: RATE_CLIENTS }, async () => {
        while (Date.now() < rateEnd) {
          const v = (await c.call('CreateVolume', { size: 1, comment: 'rate' })).volume as XmlRecord;
          if (v.status !== 'available') await volumeReaches(c, String(v.volumeId), 'available', RATE_POLL_MS);
          made.push(String(v.volumeId));
        }
      }),
    );
    const createSecs = ms(createStart) / 1000;
    rows.push({ metric: `creates/s sustained, ${RATE_CLIENTS} clients`, value: made.length / createSecs, unit: '/s', target: { limit: 150, atMost: false }, note: `${made.length} available in ${createSecs.toFixed(1)} s` });
    say(`  creates: ${made.length} in ${createSecs.toFixed(1)} s`);
    const deleteStart = process.hrtime.bigint();
    let nextDelete = 0;
    await Promise.all(
      Array.from({ length: RATE_CLIENTS }, async () => {
        while (nextDelete < made.length) {
          const volumeId = made[nextDelete++]!;
          await c.call('DeleteVolume', { volumeId });
          await until(async () => (await volume(c, volumeId)) === undefined, `${volumeId} deleted`, RATE_POLL_MS);
        }
      }),
    );
    const deleteSecs = ms(deleteStart) / 1000;
    rows.push({ metric: `deletes/s sustained, ${RATE_CLIENTS} clients`, value: made.length / deleteSecs, unit: '/s', target: { limit: 300, atMost: false }, note: `${made.length} gone in ${deleteSecs.toFixed(1)} s` });
    say(`  deletes: ${made.length} in ${deleteSecs.toFixed(1)} s`);

    // --- attach and detach on the simulated VMM host ----------------------------
    const { attachSamples, detachSamples } = await attachDetach(c, sourceId, 'xvdb', ATTACHES);
    report(latencyRows('attach→attached (simulator)', attachSamples, 'attaches'));
    report(latencyRows('detach→detached (simulator)', detachSamples, 'detaches'));
    // The simulator's own start-up, which a real host does not have: one
    // hostsim process per host command (an attach or detach runs a few).
    const sim = summarize(timeCommand(process.execPath, [join(VBS_HOME, 'dist', 'sim', 'hostsim.js'), '--state', join(dir, 'vmm-sim'), 'xm', 'list'], ATTACHES, () => undefined));
    rows.push({ metric: 'simulator: one host command (hostsim xm list) p50', value: sim.p50, unit: 'ms', note: `its own start-up, not VBS's; ${sim.n} runs` });

    // --- DescribeVolumes at 1,000 and 100,000 volumes ----------------------------
    let loaded = 0;
    for (const total of [1_000, 100_000]) {
      await stop();
      const present = countVolumes(join(dir, 'vbs.db'));
      loadVolumes(join(dir, 'vbs.db'), 'admin', total - present, loaded);
      loaded += total - present;
      ({ api: c } = await start());
      const ids = (await c.call('DescribeVolumes', { maxResults: 1000 })).volume as XmlRecord[];
      const one: number[] = [];
      for (let i = 0; i < 300; i++) {
        const t = process.hrtime.bigint();
        await c.call('DescribeVolumes', { volumeId: [String(ids[(i * 37) % ids.length]!.volumeId)] });
        one.push(ms(t));
      }
      const pages: number[] = [];
      let token: string | undefined;
      for (let i = 0; i < 60; i++) {
        const t = process.hrtime.bigint();
        const out = await c.call('DescribeVolumes', { maxResults: 1000, nextToken: token });
        pages.push(ms(t));
        token = out.nextToken as string | undefined;
      }
      const label = total.toLocaleString('en');
      const big = total === 100_000;
      const s1 = summarize(one.slice(20));
      const sp = summarize(pages.slice(3));
      rows.push({ metric: `DescribeVolumes one id p99, ${label} volumes`, value: s1.p99, unit: 'ms', target: big ? { limit: 5, atMost: true } : undefined, note: `p50 ${s1.p50.toFixed(2)} ms, ${s1.n} calls` });
      rows.push({ metric: `DescribeVolumes page of 1,000 p99, ${label} volumes`, value: sp.p99, unit: 'ms', target: big ? { limit: 60, atMost: true } : undefined, note: `p50 ${sp.p50.toFixed(1)} ms, ${sp.n} pages` });
      say(`  describe at ${label}: one id p99 ${s1.p99.toFixed(2)} ms, page p99 ${sp.p99.toFixed(1)} ms`);
      if (big) rows.push({ metric: 'front RSS, 100,000 volumes', value: rssMiB(dep!.servicePid('front')), unit: 'MiB', target: { limit: 200, atMost: true }, note: 'after the describe calls' });
    }
    await stop();

    // --- the metadata on SQLite and on PostgreSQL, side by side ------------------
    report(await databaseRows(where, commands));

    // --- the papers' baselines, same sizes, same file system ----------------------
    const target = join(where.dir, 'baseline.img');
    const remove = () => rmSync(target, { force: true });
    const dd = summarize(timeCommand('dd', ['if=/dev/zero', `of=${target}`, 'bs=1M', 'count=1024', 'conv=fsync', 'status=none'], 3, remove));
    const cp = summarize(timeCommand('cp', ['--reflink=never', join(dir, 'volumes', `${sourceId}.img`), target], 3, remove));
    rows.push({ metric: 'papers: 1 GiB blank volume with dd (conv=fsync) p50', value: dd.p50, unit: 'ms', note: 'the command alone, 3 runs' });
    rows.push({ metric: 'papers: 1 GiB snapshot with cp (full copy) p50', value: cp.p50, unit: 'ms', note: 'the command alone, 3 runs' });
  } catch (err) {
    // The deployment's logs outlive a failed run: what to read to see why.
    const keep = mkdtempSync(join(tmpdir(), 'vbs-bench-logs-'));
    cpSync(join(dir, 'logs'), join(keep, 'logs'), { recursive: true });
    cpSync(join(where.dir, 'vbs-up.log'), join(keep, 'vbs-up.log'));
    say(`control-plane bench failed; the deployment's logs are in ${keep}`);
    throw err;
  } finally {
    await stop();
    where.cleanup();
  }

  const about = {
    date: new Date().toISOString(),
    machine: `${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${Math.round(totalmem() / GiB)} GiB memory`,
    fileSystem: where.fs,
    seconds: Math.round((Date.now() - started) / 1000),
    notes: [
      'a real vbs up (front, volume delegate, simulated VMM host) on 127.0.0.1, mutual TLS, keep-alive SOAP clients',
      'blank volumes thin (truncate); the 1 GiB source holds real bytes',
      `latencies include the client asking again every ${POLL_MS} ms until the record is ready (${RATE_POLL_MS} ms in the creates/s and deletes/s runs, where each of the 32 clients waits for its volume before the next)`,
      `calls asked again after the connection was cut before an answer (Describe, and creates with their client token): ${retried}`,
      'the 1,000 and 100,000 volumes of the DescribeVolumes rows were inserted into the metadata directly while the front was stopped: they measure queries, not creates',
    ],
  };
  const table = formatTable(rows);
  say('');
  say(table);
  say(formatSideBySide(rows));
  const out = resolve(VBS_HOME, 'bench', 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'latest.json'), jsonReport(rows, about));
  say(`written ${join(out, 'latest.json')} (${about.seconds} s)`);
  return 0;
}

/**
 * `--profile DIR [--strace]`: instead of the table, where the CPU goes in the
 * 8-client create phase and the 32-client create and delete phases, each on a
 * fresh `vbs up --cpu-prof` (see profile-run.ts); DIR/<phase>/breakdown.md.
 */
async function profileMain(out: string, strace: boolean): Promise<number> {
  const where = benchFolder();
  const dir = join(where.dir, 'deployment');
  mkdirSync(dir);
  const commands = join(where.dir, 'commands.properties');
  writeThinCommands(commands);
  let dep: SoakDeployment | undefined;
  let c: Clients | undefined;
  const start = async (cpuProfileDir: string) => {
    dep = await SoakDeployment.start({ dir, backend: 'file', commands, stderrFile: join(where.dir, 'vbs-up.log'), cpuProfileDir });
    c = clientsFor(dir, dep.url, 64);
    const d = dep;
    return {
      servicePid: (name: 'front' | 'volume-delegate' | 'vmm-delegate') => d.servicePid(name),
      stop: async () => {
        c?.close();
        await d.stop();
        dep = undefined;
      },
    };
  };
  const api = () => c!;
  const createWait = async (every: number) => {
    const v = (await api().call('CreateVolume', { size: 1, comment: 'profile' })).volume as XmlRecord;
    if (v.status !== 'available') await volumeReaches(api(), String(v.volumeId), 'available', every);
    return String(v.volumeId);
  };
  const made: string[] = [];
  const phases: Phase[] = [
    {
      name: 'create-8',
      what: 'blank create→available, 8 clients, 160 creates',
      run: async () => (await latencies(8, 160, async () => (await createWait(POLL_MS), 0))).length,
    },
    {
      name: 'create-32',
      what: `blank creates, ${RATE_CLIENTS} clients for ${RATE_SECONDS} s, each waiting for its volume`,
      run: async () => {
        const end = Date.now() + RATE_SECONDS * 1000;
        await Promise.all(Array.from({ length: RATE_CLIENTS }, async () => { while (Date.now() < end) made.push(await createWait(RATE_POLL_MS)); }));
        return made.length;
      },
    },
    {
      name: 'delete-32',
      what: `deletes of those volumes, ${RATE_CLIENTS} clients, each waiting until its volume is gone`,
      run: async () => {
        let next = 0;
        await Promise.all(
          Array.from({ length: RATE_CLIENTS }, async () => {
            while (next < made.length) {
              const volumeId = made[next++]!;
              await api().call('DeleteVolume', { volumeId });
              await until(async () => (await volume(api(), volumeId)) === undefined, `${volumeId} deleted`, RATE_POLL_MS);
            }
          }),
        );
        return made.length;
      },
    },
  ];
  if (strace) phases.push({ name: 'create-8-strace', what: 'as create-8, with strace -c -f on the front and the volume delegate (its overhead inflates the times)', run: phases[0]!.run });
  try {
    say(`profile: vbs up on ${where.fs}, ${cpus().length} cores; results in ${resolve(out)}`);
    for (const phase of phases) await profilePhase({ dir: out, phase, start, strace: phase.name.endsWith('-strace'), say });
  } finally {
    c?.close();
    await dep?.stop();
    where.cleanup();
  }
  return 0;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** SIGTERM, then SIGKILL after 10 s; waits (bounded) until it is gone. */
async function endProcess(pid: number): Promise<void> {
  if (!alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; alive(pid) && i < 200; i++) {
    if (i === 100) process.kill(pid, 'SIGKILL');
    await delay(100);
  }
}

/**
 * `--qemu`: attach and detach on a real QEMU VM (TCG, no KVM: what a CI
 * machine has), through `vbs up --vmm qemu` (QMP blockdev-add and
 * device_add of the volume file on virtio-scsi). Needs root and
 * qemu-system-x86_64. Prints its rows; the VM is stopped by its PID.
 */
async function qemuMain(): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error('--qemu needs root');
  const where = benchFolder();
  const dir = join(where.dir, 'deployment');
  const qmpDir = join(where.dir, 'qmp');
  mkdirSync(dir);
  mkdirSync(qmpDir);
  const commands = join(where.dir, 'commands.properties');
  writeThinCommands(commands);
  let vmPid: number | undefined;
  let dep: SoakDeployment | undefined;
  let c: Clients | undefined;
  try {
    const pidFile = join(qmpDir, 'vm1.pid');
    const vmStart = process.hrtime.bigint();
    execFileSync('qemu-system-x86_64', [
      '-machine', 'accel=tcg', '-S', '-nodefaults', '-nographic', '-m', '64', '-name', 'vm1',
      '-qmp', `unix:${join(qmpDir, 'vm1.qmp')},server=on,wait=off`,
      '-monitor', 'none', '-serial', 'none', '-display', 'none',
      '-device', 'virtio-scsi-pci,id=scsi0', '-pidfile', pidFile, '-daemonize',
    ]);
    const vmStartMs = ms(vmStart);
    vmPid = Number(readFileSync(pidFile, 'utf8').trim());
    dep = await SoakDeployment.start({ dir, backend: 'file', commands, stderrFile: join(where.dir, 'vbs-up.log'), upArgs: ['--vmm', 'qemu', '--qmp-dir', qmpDir] });
    c = clientsFor(dir, dep.url, 1);
    const v = (await c.call('CreateVolume', { size: 1, comment: 'qemu attach' })).volume as XmlRecord;
    await volumeReaches(c, String(v.volumeId), 'available');
    const { attachSamples, detachSamples } = await attachDetach(c, String(v.volumeId), 'sdb', ATTACHES);
    const rows = [
      ...latencyRows('attach→attached (QEMU, TCG)', attachSamples, 'attaches', { limit: 250, atMost: true }),
      ...latencyRows('detach→detached (QEMU, TCG)', detachSamples, 'detaches', { limit: 250, atMost: true }),
      { metric: 'QEMU VM start (TCG, paused), once', value: vmStartMs, unit: 'ms', note: 'not part of an attach' },
    ];
    say(formatTable(rows));
    return 0;
  } finally {
    c?.close();
    await dep?.stop();
    // The VM holds files on the loop mount: it must be gone before the unmount.
    if (vmPid !== undefined) await endProcess(vmPid);
    where.cleanup();
  }
}

/**
 * `--libvirt`: attach and detach on a real libvirt domain (type qemu: TCG)
 * of qemu:///system, through `vbs up --vmm libvirt`. Needs root, libvirt and
 * virsh; libvirtd and virtlogd are started if they do not run (and then
 * stopped, by their PID files). The domain, defined and started paused here, is
 * destroyed and undefined at the end.
 */
async function libvirtMain(): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error('--libvirt needs root');
  const env = { ...process.env, LIBVIRT_DEFAULT_URI: 'qemu:///system' };
  const virsh = (...args: string[]) => execFileSync('virsh', args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
  const where = benchFolder();
  const dir = join(where.dir, 'deployment');
  mkdirSync(dir);
  // QEMU runs as libvirt-qemu: it must reach the volume files (search permission on the folders).
  for (let d = where.dir; d !== dirname(d) && d !== tmpdir(); d = dirname(d)) chmodSync(d, 0o711);
  const commands = join(where.dir, 'commands.properties');
  writeThinCommands(commands);
  const name = `vbs-bench-${randomUUID().slice(0, 8)}`;
  const xml = join(where.dir, 'domain.xml');
  writeFileSync(xml, `<domain type='qemu'><name>${name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os><devices><controller type='scsi' index='0' model='virtio-scsi'/><memballoon model='none'/></devices></domain>\n`);
  let defined = false;
  let dep: SoakDeployment | undefined;
  let c: Clients | undefined;
  // libvirtd and virtlogd when they do not run (no systemd here), with PID files of our own: only those are stopped.
  const started: string[] = [];
  try {
    for (const [daemon, socket] of [['virtlogd', '/run/libvirt/virtlogd-sock'], ['libvirtd', '/run/libvirt/libvirt-sock']] as const) {
      if (existsSync(socket)) continue;
      const pidFile = join(where.dir, `${daemon}.pid`);
      execFileSync(daemon, ['-d', '-p', pidFile]);
      started.push(pidFile);
      await until(async () => existsSync(socket), `${daemon} listening`, 100);
    }
    await until(async () => {
      try {
        virsh('uri');
        return true;
      } catch {
        return false;
      }
    }, 'libvirtd answering', 200);
    virsh('define', xml);
    defined = true;
    const vmStart = process.hrtime.bigint();
    virsh('start', name, '--paused');
    const vmStartMs = ms(vmStart);
    dep = await SoakDeployment.start({ dir, backend: 'file', commands, stderrFile: join(where.dir, 'vbs-up.log'), upArgs: ['--vmm', 'libvirt'] });
    for (const d of [dir, join(dir, 'volumes')]) chmodSync(d, 0o711);
    c = clientsFor(dir, dep.url, 1);
    const v = (await c.call('CreateVolume', { size: 1, comment: 'libvirt attach' })).volume as XmlRecord;
    await volumeReaches(c, String(v.volumeId), 'available');
    const { attachSamples, detachSamples } = await attachDetach(c, String(v.volumeId), 'sdb', ATTACHES, name);
    const rows = [
      ...latencyRows('attach→attached (libvirt, TCG)', attachSamples, 'attaches', { limit: 250, atMost: true }),
      ...latencyRows('detach→detached (libvirt, TCG)', detachSamples, 'detaches', { limit: 250, atMost: true }),
      { metric: 'libvirt domain start (TCG, paused), once', value: vmStartMs, unit: 'ms', note: 'not part of an attach' },
    ];
    say(formatTable(rows));
    return 0;
  } finally {
    c?.close();
    await dep?.stop();
    if (defined) {
      try {
        virsh('destroy', name);
      } catch {
        // not running
      }
      virsh('undefine', name);
    }
    for (const pidFile of started.reverse()) await endProcess(Number(readFileSync(pidFile, 'utf8').trim()));
    where.cleanup();
  }
}

const profileAt = process.argv.indexOf('--profile');
const run = profileAt >= 0 ? () => profileMain(process.argv[profileAt + 1] ?? 'bench/results/profile', process.argv.includes('--strace')) : process.argv.includes('--qemu') ? qemuMain : process.argv.includes('--libvirt') ? libvirtMain : main;

run().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`control-plane bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
