import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:https';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VBS_SERVICE } from '../../src/services/vbs.js';
import { openStream, readAnswer } from '../../src/soap/stream-client.js';
import { IMPORT_IMAGE_OUTPUT } from '../../src/front/images.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { eventually, startVbs, VBS_BIN, type Vbs } from './harness.js';

const run = promisify(execFile);

/**
 * Images end to end on the file back end (docs/images.md): `vbs up` with a
 * 32 MiB image limit, the vbs CLI and raw HTTPS uploads with users' own
 * certificates, real qemu-img. One deployment for the file: every case makes
 * its own snapshots and looks only at them.
 */
let vbs: Vbs;
let work: string;
const MiB = 1024 * 1024;
const LIMIT_MIB = 32;

beforeAll(async () => {
  vbs = await startVbs(['--max-image-mib', String(LIMIT_MIB)]);
  work = join(vbs.dir, 'images-test');
  mkdirSync(work);
  for (const user of ['alice', 'bob']) {
    const r = await vbs.cli('admin', 'user', 'add', user, '--data', vbs.dir, '--out', join(work, user));
    expect(r.code, r.stderr).toBe(0);
  }
});
afterAll(async () => {
  // KEEP_VBS=1 keeps the deployment's folder (its logs) to read after a failure.
  await vbs?.stop(process.env.KEEP_VBS === '1');
});

/** The vbs CLI as `user` (admin: the deployment's own client.json). */
async function cli(user: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const config = user === 'admin' ? vbs.clientConfig : join(work, user, 'client.json');
  try {
    const r = await run(process.execPath, [VBS_BIN, '--config', config, ...args], { timeout: 120_000, maxBuffer: 64 * MiB });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

async function json<T>(user: string, ...args: string[]): Promise<T> {
  const r = await cli(user, '--json', ...args);
  expect(r.code, `vbs ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout) as T;
}

interface Snapshot {
  snapshotId: string;
  volumeId: string;
  size: number;
  status: string;
  owner: string;
  comment: string;
}

function image(name: string, bytes: number): { path: string; sha256: string; data: Buffer } {
  const data = randomBytes(bytes);
  const path = join(work, name);
  writeFileSync(path, data);
  return { path, sha256: createHash('sha256').update(data).digest('hex'), data };
}

function tlsOf(user: string) {
  const dir = user === 'admin' ? join(vbs.dir, 'pki') : join(work, user);
  const base = user === 'admin' ? 'admin' : user;
  return { key: readFileSync(join(dir, `${base}.key`)), cert: readFileSync(join(dir, `${base}.crt`)), ca: readFileSync(join(vbs.dir, 'pki', 'ca.crt')) };
}

/** The first `n` bytes of a file (volumes are 1 GiB: never read whole). */
function head(path: string, n: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(n);
    readSync(fd, b, 0, n, 0);
    return b;
  } finally {
    closeSync(fd);
  }
}

/** The code of a SOAP fault's text. */
const faultOf = (xml: string) => /<faultstring>([^<]*)<\/faultstring>/.exec(xml)?.[1];

/** What the delegate's folder holds besides finished objects: staging and partial files. */
const leftovers = () => readdirSync(join(vbs.dir, 'volumes')).filter((f) => f.startsWith('.'));
const snapshotsOf = async (user: string) => (await json<Snapshot[]>(user, 'describe-snapshots')).map((s) => s.snapshotId);

describe('import-image and export-image through the CLI', () => {
  it('imports a raw image with its checksum as a completed snapshot with no source volume, and exports it back byte for byte', async () => {
    const img = image('a.raw', 5 * MiB + 123);
    const snap = await json<Snapshot>('admin', 'import-image', img.path, '--sha256', img.sha256, '--comment', 'raw one');
    expect(snap).toMatchObject({ status: 'completed', volumeId: 'vol-fffffffffffffffff', size: 1, comment: 'raw one', owner: 'admin' });
    const out = join(work, 'a.out');
    const r = await cli('admin', 'export-image', snap.snapshotId, out);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(out).equals(img.data)).toBe(true);
    // A volume from it holds the image at its start.
    const vol = await json<{ volumeId: string; status: string }>('admin', '--wait', 'create-volume', '1', 'from image', snap.snapshotId);
    expect(vol.status).toBe('available');
    const volFile = join(vbs.dir, 'volumes', `${vol.volumeId}.img`);
    expect(statSync(volFile).size).toBe(1024 * MiB);
    expect(head(volFile, img.data.length).equals(img.data)).toBe(true);
  });

  it('imports a qcow2 image converted to raw, and exports it as qcow2 that qemu-img reads back to the same bytes', async () => {
    const img = image('b.raw', 3 * MiB);
    const qcow2 = join(work, 'b.qcow2');
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', img.path, qcow2]);
    const snap = await json<Snapshot>('admin', 'import-image', qcow2, '--format', 'qcow2');
    expect(snap.status).toBe('completed');
    const raw = join(work, 'b.out.raw');
    expect((await cli('admin', 'export-image', snap.snapshotId, raw)).code).toBe(0);
    expect(readFileSync(raw).equals(img.data)).toBe(true);
    const q = join(work, 'b.out.qcow2');
    expect((await cli('admin', 'export-image', snap.snapshotId, q, '--format', 'qcow2')).code).toBe(0);
    const info = JSON.parse((await run('qemu-img', ['info', '--output=json', q])).stdout) as { format: string };
    expect(info.format).toBe('qcow2');
    const back = join(work, 'b.back.raw');
    await run('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', q, back]);
    expect(readFileSync(back).equals(img.data)).toBe(true);
    expect(leftovers()).toEqual([]);
  });

  it('refuses an upload whose checksum differs, and keeps nothing of it', async () => {
    const before = await snapshotsOf('admin');
    const img = image('c.raw', 2 * MiB);
    const r = await cli('admin', 'import-image', img.path, '--sha256', '0'.repeat(64));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/InvalidParameterValue: .*SHA-256/);
    expect(await snapshotsOf('admin')).toEqual(before);
    expect(leftovers()).toEqual([]);
  });

  it('refuses a bad format locally, and a qcow2 that points at a file of the host', async () => {
    const local = await cli('admin', 'import-image', join(work, 'a.raw'), '--format', 'iso; rm -rf /');
    expect(local.code).toBe(2);
    const evil = join(work, 'evil.qcow2');
    await run('qemu-img', ['create', '-f', 'qcow2', '-F', 'raw', '-b', '/etc/passwd', evil]);
    const r = await cli('admin', 'import-image', evil, '--format', 'qcow2');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/InvalidParameterValue: The image refers to other files/);
    expect(leftovers()).toEqual([]);
  });

  it('--count 10 makes ten independent available volumes from one image', async () => {
    const img = image('d.raw', 1 * MiB);
    const snap = await json<Snapshot>('admin', 'import-image', img.path);
    const vols = await json<{ volumeId: string; status: string; snapshotId: string }[]>('admin', '--wait', 'create-volume', '1', 'fan', snap.snapshotId, '--count', '10');
    expect(vols).toHaveLength(10);
    expect(new Set(vols.map((v) => v.volumeId)).size).toBe(10);
    for (const v of vols) expect(v).toMatchObject({ status: 'available', snapshotId: snap.snapshotId });
    // Independent: writing one leaves the others and the image as they were.
    const fd = openSync(join(vbs.dir, 'volumes', `${vols[0]!.volumeId}.img`), 'r+');
    writeSync(fd, Buffer.alloc(4096, 7), 0, 4096, 0);
    closeSync(fd);
    expect(head(join(vbs.dir, 'volumes', `${vols[1]!.volumeId}.img`), img.data.length).equals(img.data)).toBe(true);
    expect(head(join(vbs.dir, 'volumes', `${snap.snapshotId}.img`), img.data.length).equals(img.data)).toBe(true);
    expect((await cli('admin', 'create-volume', '1', 'x', snap.snapshotId, '--count', '101')).code).toBe(2);
  });
});

describe('uploads cut, too large, over quota, and from several users at once', () => {
  /** A raw PUT as `user`: `send` bytes of a declared `length` (none: chunked); `cut`: the connection is then cut, else the request waits for its answer. */
  function rawPut(user: string, length: number | undefined, send: Buffer, cut = false, query = 'format=raw'): Promise<{ status: number; body: string } | 'cut'> {
    return new Promise((resolve, reject) => {
      const url = new URL(`${vbs.url}/images?${query}`);
      const req = request(url, { method: 'PUT', ...tlsOf(user), headers: length === undefined ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(length) } }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', () => resolve('cut'));
      });
      req.on('error', () => resolve('cut'));
      req.write(send, (err) => {
        if (err) return reject(err);
        if (cut) setImmediate(() => req.destroy());
        else if (length === undefined || send.length === length) req.end();
      });
    });
  }

  it('an upload cut midway leaves no snapshot, no pending record and no file', async () => {
    const before = await snapshotsOf('admin');
    const r = await rawPut('admin', 16 * MiB, randomBytes(4 * MiB), true);
    expect(r === 'cut' || r.status !== 200).toBe(true);
    // The front learns of the cut through its own stream; wait for the rollback to end.
    await eventually(async () => ((await snapshotsOf('admin')).length === before.length && leftovers().length === 0 ? true : undefined), 30_000);
    expect(await snapshotsOf('admin')).toEqual(before);
  });

  it('refuses an image over the size limit: declared at once, streamed once it passes the limit', async () => {
    const declared = await rawPut('admin', (LIMIT_MIB + 1) * MiB, Buffer.alloc(0));
    expect(declared !== 'cut' && faultOf(declared.body)).toBe('RequestTooLarge');
    const before = await snapshotsOf('admin');
    const streamed = await rawPut('admin', undefined, randomBytes((LIMIT_MIB + 1) * MiB));
    expect(streamed !== 'cut' && faultOf(streamed.body)).toBe('RequestTooLarge');
    expect(await snapshotsOf('admin')).toEqual(before);
    await eventually(async () => (leftovers().length === 0 ? true : undefined));
  });

  it('refuses an import past the snapshot quota', async () => {
    await vbs.soap().call('SetQuota', { user: 'bob', snapshots: 1 });
    const img = image('q.raw', MiB);
    expect((await cli('bob', 'import-image', img.path)).code).toBe(0);
    const r = await cli('bob', 'import-image', img.path);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/QuotaExceeded/);
    expect(await snapshotsOf('bob')).toHaveLength(1);
  });

  it('two users import at once; each sees their own, and a shared image makes volumes for the other', async () => {
    const a = image('alice.raw', 8 * MiB);
    const b = image('admin2.raw', 8 * MiB);
    const [sa, sb] = await Promise.all([json<Snapshot>('alice', 'import-image', a.path, '--sha256', a.sha256), json<Snapshot>('admin', 'import-image', b.path, '--sha256', b.sha256)]);
    expect(sa).toMatchObject({ owner: 'alice', status: 'completed' });
    expect(sb).toMatchObject({ owner: 'admin', status: 'completed' });
    expect(await snapshotsOf('alice')).toEqual([sa.snapshotId]);
    // bob cannot read alice's image until she shares it.
    const refused = await cli('bob', 'export-image', sa.snapshotId, join(work, 'no.raw'));
    expect(refused.stderr).toMatch(/InvalidSnapshot.NotFound/);
    expect((await cli('alice', 'share-snapshot', sa.snapshotId, 'bob')).code).toBe(0);
    const got = join(work, 'bob.raw');
    expect((await cli('bob', 'export-image', sa.snapshotId, got)).code).toBe(0);
    expect(readFileSync(got).equals(a.data)).toBe(true);
  });

  it('a streamed upload through the client library answers the SOAP record of the snapshot', async () => {
    const data = randomBytes(MiB);
    const { Readable } = await import('node:stream');
    const res = await openStream({ def: VBS_SERVICE, url: vbs.url, tls: tlsOf('alice') }, { method: 'PUT', path: 'images', query: { format: 'raw' }, body: Readable.from([data]), idleMs: 30_000 });
    const out = (await readAnswer(res, VBS_SERVICE, 'ImportImage', IMPORT_IMAGE_OUTPUT)).snapshot as XmlRecord;
    expect(out).toMatchObject({ status: 'completed', owner: 'alice' });
  });

  it('no service stopped along the way (a cut or refused upload never takes a process down)', () => {
    const logs = join(vbs.dir, 'logs');
    for (const f of readdirSync(logs)) expect(readFileSync(join(logs, f), 'utf8'), f).not.toContain('service stopped unexpectedly');
  });
});
