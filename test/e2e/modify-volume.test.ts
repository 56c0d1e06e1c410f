import { closeSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { faultOf } from '../fault-of.js';
import { eventually, startVbs, type Vbs } from './harness.js';

/**
 * ModifyVolume end to end on the file back end: `vbs up` (real processes,
 * mutual TLS), the vbs CLI and SOAP clients, the volume's real file, and the
 * simulated Xen host (whose blkback notices a grown device by itself).
 */
let vbs: Vbs;
beforeAll(async () => {
  vbs = await startVbs();
});
afterAll(async () => {
  await vbs?.stop();
});

const GiB = 1024 ** 3;
const MARK = 'VBS-RESIZE-MARK';

async function json<T>(...args: string[]): Promise<T> {
  const r = await vbs.cli('--json', ...args);
  expect(r.stderr.includes('vbs: ') ? r.stderr : '', `vbs ${args.join(' ')}`).toBe(''); // progress lines go to stderr too
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as T;
}

interface Modification {
  volumeId: string;
  modificationState: string;
  originalSize: number;
  targetSize: number;
  progress: number;
  statusMessage?: string;
}

const fileOf = (id: string) => join(vbs.dir, 'volumes', `${id}.img`);

function writeAt(path: string, offset: number, text: string): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, text, offset);
  closeSync(fd);
}

function readAt(path: string, offset: number, length: number): string {
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(length);
  readSync(fd, buf, 0, length, offset);
  closeSync(fd);
  return buf.toString();
}

describe('vbs modify-volume and describe-volumes-modifications', () => {
  let volumeId: string;

  it('grows an available volume: the file grows, what it held is kept, the volume says its new size', async () => {
    volumeId = (await json<{ volumeId: string }>('create-volume', '1', 'grows', '--wait')).volumeId;
    writeAt(fileOf(volumeId), 0, MARK);
    writeAt(fileOf(volumeId), GiB - MARK.length, MARK);
    const m = await json<Modification>('modify-volume', volumeId, '--size', '2');
    expect(m).toMatchObject({ volumeId, modificationState: 'completed', originalSize: 1, targetSize: 2, progress: 100 });
    expect(statSync(fileOf(volumeId)).size).toBe(2 * GiB);
    expect(readAt(fileOf(volumeId), 0, MARK.length)).toBe(MARK);
    expect(readAt(fileOf(volumeId), GiB - MARK.length, MARK.length)).toBe(MARK);
    const [vol] = await json<{ size: number; status: string }[]>('describe-volumes', volumeId);
    expect(vol).toMatchObject({ size: 2, status: 'available' });
  });

  it('grows an attached volume; the simulated Xen host needs no command (blkback sees the device grow)', async () => {
    await json('attach-volume', volumeId, 'localhost', 'vm1', 'xvdb', '--wait');
    const m = await json<Modification>('modify-volume', volumeId, '--size', '3', '--wait');
    expect(m).toMatchObject({ modificationState: 'completed', targetSize: 3 });
    expect(m.statusMessage).toBeUndefined();
    expect(statSync(fileOf(volumeId)).size).toBe(3 * GiB);
    const [vol] = await json<{ size: number; status: string }[]>('describe-volumes', volumeId);
    expect(vol).toMatchObject({ size: 3, status: 'in-use' });
    await json('detach-volume', volumeId, '--wait');
  });

  it('refuses to shrink, with the fault code and exit 1, and changes nothing', async () => {
    const r = await vbs.cli('modify-volume', volumeId, '--size', '1');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/InvalidParameterValue.*never shrink/);
    const bad = await vbs.cli('modify-volume', volumeId, '--size', 'lots');
    expect(bad.code).not.toBe(0);
    expect(statSync(fileOf(volumeId)).size).toBe(3 * GiB);
  });

  it('a growth the back end has no room for fails: the record says failed, the file and the size are unchanged', async () => {
    const r = await vbs.cli('--json', 'modify-volume', volumeId, '--size', '16384');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/InsufficientCapacity/);
    expect(statSync(fileOf(volumeId)).size).toBe(3 * GiB);
    const [latest] = await json<Modification[]>('describe-volumes-modifications', volumeId);
    expect(latest).toMatchObject({ modificationState: 'failed', originalSize: 3, targetSize: 16384 });
    const [vol] = await json<{ size: number }[]>('describe-volumes', volumeId);
    expect(vol!.size).toBe(3);
  });

  it('lists each request with --all-requests, filters and pages', async () => {
    const all = await json<Modification[]>('describe-volumes-modifications', '--all-requests', volumeId);
    expect(all.map((m) => [m.originalSize, m.targetSize, m.modificationState])).toEqual([
      [1, 2, 'completed'],
      [2, 3, 'completed'],
      [3, 16384, 'failed'],
    ]);
    const done = await json<Modification[]>('describe-volumes-modifications', '--all-requests', '--filter', 'modificationState=completed');
    expect(done.map((m) => m.targetSize)).toEqual([2, 3]);
    const page = await json<{ modifications: Modification[]; nextToken?: string }>('describe-volumes-modifications', '--all-requests', '--max-results', '5');
    expect(page.modifications).toHaveLength(3);
    expect(page.nextToken).toBeUndefined();
    const table = await vbs.cli('describe-volumes-modifications', volumeId);
    expect(table.stdout).toMatch(/^VOLUME\s+STATE\s+ORIGINAL\(GiB\)\s+TARGET\(GiB\)/);
    expect(table.stdout).toContain('failed');
  });
});

describe('ModifyVolume through SOAP: ownership and quota', () => {
  it("another user's volume is not found; the owner's GiB quota counts the new size", async () => {
    const admin = vbs.soap();
    const alice = vbs.soap('alice');
    const bob = vbs.soap('bob');
    await admin.call('SetQuota', { user: 'alice', gib: 3 });
    const created = (await alice.call('CreateVolume', { size: 1 })).volume as XmlRecord;
    const id = String(created.volumeId);
    await eventually(async () => (((await alice.call('DescribeVolumes', { volumeId: [id] })).volume as XmlRecord[])[0]!.status === 'available' ? true : undefined));
    expect((await faultOf(bob.call('ModifyVolume', { volumeId: id, size: 2 }))).code).toBe('InvalidVolume.NotFound');
    expect((await faultOf(alice.call('ModifyVolume', { volumeId: id, size: 4 }))).code).toBe('QuotaExceeded');
    const m = (await alice.call('ModifyVolume', { volumeId: id, size: 3 })).modification as XmlRecord;
    expect(m).toMatchObject({ modificationState: 'completed', targetSize: 3 });
    expect(((await bob.call('DescribeVolumesModifications', {})).modification as XmlRecord[] | undefined) ?? []).toEqual([]);
    expect((await faultOf(bob.call('DescribeVolumesModifications', { volumeId: [id] }))).code).toBe('InvalidVolume.NotFound');
    expect(((await alice.call('DescribeVolumesModifications', { volumeId: [id] })).modification as XmlRecord[])[0]).toMatchObject({ targetSize: 3 });
  });
});
