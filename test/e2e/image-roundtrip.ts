import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { eventually, type Vbs } from './harness.js';
import { expectCheckClean, ok, type Site } from './lvm-iscsi/site.js';

const run = promisify(execFile);
const MiB = 1024 ** 2;

/**
 * The same image cases on any back end, through the public interfaces a
 * user has (the vbs CLI, and a raw HTTPS PUT for a cut upload): import raw
 * (with a checksum) and qcow2, export raw and qcow2 of the snapshot and of a
 * volume, `create-volume --count` fan-out, and an upload cut midway. What is
 * really on the back end is checked with `stored()`: the objects it holds
 * and any staging or half-made leftovers, in the back end's own words.
 */
export interface RoundTrip {
  vbs: () => Vbs;
  site: () => Site;
  /** What the back end really holds, for comparison before and after (no leftover of an import may appear). */
  stored: () => Promise<string[]>;
  /** The names in `stored()` that an image (snapshot) with this id and its volumes account for. */
  ownedBy: (snapshotId: string, volumeIds: string[]) => string[];
  /** Volumes a fan-out makes (kept small where each volume is a full copy). */
  count: number;
}

interface Snapshot {
  snapshotId: string;
  volumeId: string;
  size: number;
  status: string;
}
interface Volume {
  volumeId: string;
  status: string;
  snapshotId?: string;
}

export function imageRoundTrip(t: RoundTrip): void {
  const work = () => {
    const dir = join(t.vbs().dir, 'images-e2e');
    mkdirSync(dir, { recursive: true });
    return dir;
  };
  const file = (name: string, data: Buffer) => {
    const path = join(work(), name);
    writeFileSync(path, data);
    return path;
  };
  const cli = (...args: string[]) => t.site().cli(...args);

  it('import-image of a raw image (checksum verified) and of a qcow2; export-image of both back as raw and qcow2, byte for byte', async () => {
    const before = await t.stored();
    const data = randomBytes(3 * MiB + 4096);
    const sha = createHash('sha256').update(data).digest('hex');
    const raw = await ok<Snapshot>(t.site(), 'import-image', file('in.raw', data), '--sha256', sha, '--comment', 'e2e raw');
    expect(raw).toMatchObject({ status: 'completed', volumeId: 'vol-fffffffffffffffff', size: 1 });
    const rawOut = join(work(), 'out.raw');
    expect((await cli('export-image', raw.snapshotId, rawOut)).code).toBe(0);
    // lvm-iscsi gives back whole GiB (zero-padded): the image is at its start.
    const back = readFileSync(rawOut);
    expect(back.subarray(0, data.length).equals(data)).toBe(true);
    expect(back.subarray(data.length).equals(Buffer.alloc(back.length - data.length))).toBe(true);

    const qIn = join(work(), 'in.qcow2');
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', join(work(), 'in.raw'), qIn]);
    const q = await ok<Snapshot>(t.site(), 'import-image', qIn, '--format', 'qcow2');
    expect(q.status).toBe('completed');
    const qOut = join(work(), 'out.qcow2');
    expect((await cli('export-image', q.snapshotId, qOut, '--format', 'qcow2')).code).toBe(0);
    expect((JSON.parse((await run('qemu-img', ['info', '--output=json', qOut])).stdout) as { format: string }).format).toBe('qcow2');
    const qBack = join(work(), 'out.qcow2.raw');
    await run('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', qOut, qBack]);
    expect(readFileSync(qBack).subarray(0, data.length).equals(data)).toBe(true);

    expect((await t.stored()).sort()).toEqual([...before, ...t.ownedBy(raw.snapshotId, []), ...t.ownedBy(q.snapshotId, [])].sort());
    for (const s of [raw, q]) await ok(t.site(), 'delete-snapshot', s.snapshotId, '--wait');
    expect(await t.stored()).toEqual(before);
    await expectCheckClean(t.site());
  });

  it('create-volume --count makes independent available volumes from one image; each exports the image at its start', async () => {
    const before = await t.stored();
    const data = randomBytes(MiB);
    const snap = await ok<Snapshot>(t.site(), 'import-image', file('fan.raw', data));
    const vols = await ok<Volume[]>(t.site(), '--wait', 'create-volume', '1', 'fan-out', snap.snapshotId, '--count', String(t.count));
    expect(vols).toHaveLength(t.count);
    expect(new Set(vols.map((v) => v.volumeId)).size).toBe(t.count);
    for (const v of vols) expect(v).toMatchObject({ status: 'available', snapshotId: snap.snapshotId });
    expect((await t.stored()).sort()).toEqual([...before, ...t.ownedBy(snap.snapshotId, vols.map((v) => v.volumeId))].sort());
    const out = join(work(), 'vol.qcow2');
    expect((await cli('export-image', vols[0]!.volumeId, out, '--format', 'qcow2')).code).toBe(0);
    const volRaw = join(work(), 'vol.raw');
    await run('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', out, volRaw]);
    const got = readFileSync(volRaw);
    expect(got.length).toBe(1024 * MiB);
    expect(got.subarray(0, data.length).equals(data)).toBe(true);
    await expectCheckClean(t.site());
    // The image goes first (EBS order: volumes made from it outlive it), then its volumes.
    await ok(t.site(), 'delete-snapshot', snap.snapshotId, '--wait');
    for (const v of vols) await ok(t.site(), 'delete-volume', v.volumeId, '--wait');
    expect(await t.stored()).toEqual(before);
    await expectCheckClean(t.site());
  });

  it('an upload cut midway leaves no snapshot, no record and nothing on the back end', async () => {
    const before = await t.stored();
    const snapshots = async () => (await ok<Snapshot[]>(t.site(), 'describe-snapshots')).length;
    const count = await snapshots();
    const vbs = t.vbs();
    const pki = join(vbs.dir, 'pki');
    await new Promise<void>((resolve) => {
      const req = request(new URL(`${vbs.url}/images?format=raw`), {
        method: 'PUT',
        key: readFileSync(join(pki, 'admin.key')),
        cert: readFileSync(join(pki, 'admin.crt')),
        ca: readFileSync(join(pki, 'ca.crt')),
        headers: { 'content-length': String(16 * MiB) },
      });
      req.on('response', (res) => (res.resume(), res.on('end', resolve), res.on('error', () => resolve())));
      req.on('error', () => resolve());
      req.write(randomBytes(4 * MiB), () => setImmediate(() => req.destroy()));
    });
    // The front learns of the cut through its own stream; the rollback then ends.
    await eventually(async () => ((await snapshots()) === count && JSON.stringify(await t.stored()) === JSON.stringify(before) ? true : undefined), 60_000);
    await expectCheckClean(t.site());
  });
}
