import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, cpSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { VbsError } from '../core/errors.js';
import { VBS_HOME } from '../core/paths.js';
import { VBS_SERVICE } from '../services/vbs.js';
import { SoapClient } from '../soap/client.js';
import type { Record as XmlRecord } from '../soap/xml.js';
import { SoakDeployment, writeThinCommands } from '../soak/deployment.js';
import { formatTable, jsonReport, latencyRows, summarize, type Row } from './stats.js';
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
  const db = new Database(dbFile);
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
  const db = new Database(dbFile, { readonly: true });
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

async function main(): Promise<number> {
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
    const attachSamples: number[] = [];
    const detachSamples: number[] = [];
    for (let i = 0; i < 10; i++) {
      let t = process.hrtime.bigint();
      await c.call('AttachVolume', { volumeId: sourceId, vmmHost: 'localhost', vmId: 'vm1', device: 'xvdb' });
      await until(async () => ((await volume(c, sourceId))?.attachments as XmlRecord[] | undefined)?.[0]?.status === 'attached', 'attached');
      attachSamples.push(ms(t));
      t = process.hrtime.bigint();
      await c.call('DetachVolume', { volumeId: sourceId });
      await until(async () => ((await volume(c, sourceId))?.attachments as XmlRecord[] | undefined)?.length === 0, 'detached');
      detachSamples.push(ms(t));
    }
    report(latencyRows('attach→attached (simulator)', attachSamples, 'attaches'));
    report(latencyRows('detach→detached (simulator)', detachSamples, 'detaches'));

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
  const out = resolve(VBS_HOME, 'bench', 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'latest.json'), jsonReport(rows, about));
  say(`written ${join(out, 'latest.json')} (${about.seconds} s)`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`control-plane bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
