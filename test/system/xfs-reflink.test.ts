import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVbs, type Vbs } from '../e2e/harness.js';
import { json, type Volume } from './cli.js';
import { requireRoot, sector } from './host.js';

/**
 * Copy-on-write for real: the file back end on an XFS file system with
 * reflink (a loop-mounted image, made and removed here). A snapshot and a
 * volume made from it are reflink clones (their extents are shared, as
 * `filefrag -v` shows), and each keeps its own point in time.
 */
let dir: string;
let mnt: string;
let mounted = false;
let vbs: Vbs | undefined;

beforeAll(async () => {
  requireRoot();
  dir = mkdtempSync(join(tmpdir(), 'vbs-sys-xfs-'));
  mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  const img = join(dir, 'xfs.img');
  execFileSync('truncate', ['-s', '4G', img]); // sparse: only what is written takes space
  execFileSync('mkfs.xfs', ['-q', '-m', 'reflink=1', img]);
  execFileSync('mount', ['-o', 'loop', img, mnt]);
  mounted = true;
  vbs = await startVbs([], join(mnt, 'data'));
});

afterAll(async () => {
  await vbs?.stop(true);
  // `mount -o loop` made the loop device with autoclear: unmounting frees it.
  if (mounted) execFileSync('umount', [mnt]);
  rmSync(dir, { recursive: true, force: true });
});

const fileOf = (id: string) => join(mnt, 'data', 'volumes', `${id}.img`);

function writeAt0(file: string, bytes: Buffer): void {
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, bytes, 0, bytes.length, 0);
    execFileSync('sync', ['-f', file]);
  } finally {
    closeSync(fd);
  }
}

function readAt0(file: string): Buffer {
  const b = Buffer.alloc(512);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, b, 0, 512, 0);
  } finally {
    closeSync(fd);
  }
  return b;
}

/** The extents of a file that share their blocks with another file (`filefrag -v`: flag `shared`). */
function sharedExtents(file: string): number {
  return execFileSync('filefrag', ['-v', file], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => /^\s*\d+:/.test(l) && /\bshared\b/.test(l)).length;
}

describe('snapshots and clones on XFS', { timeout: 180_000 }, () => {
  it('are reflinks that share extents, each with its own point in time', async () => {
    const vol = await json<Volume>(vbs!, 'create-volume', '1', 'origin', '--wait');
    const before = sector('written before the snapshot');
    const after = sector('written after the snapshot');
    writeAt0(fileOf(vol.volumeId), before);

    const snap = await json<{ snapshotId: string; status: string }>(vbs!, 'create-snapshot', vol.volumeId, 'point in time', '--wait');
    expect(snap.status).toBe('completed');
    const snapFile = fileOf(snap.snapshotId);
    expect(sharedExtents(snapFile)).toBeGreaterThan(0);
    expect(sharedExtents(fileOf(vol.volumeId))).toBeGreaterThan(0);

    writeAt0(fileOf(vol.volumeId), after);
    const clone = await json<Volume>(vbs!, 'create-volume', '1', 'clone', snap.snapshotId, '--wait');
    expect(sharedExtents(fileOf(clone.volumeId))).toBeGreaterThan(0);

    expect(readAt0(fileOf(vol.volumeId))).toEqual(after);
    expect(readAt0(snapFile)).toEqual(before);
    expect(readAt0(fileOf(clone.volumeId))).toEqual(before);

    // Three 1 GiB files, sharing: far less than 3 GiB used on the file system.
    const usedKiB = Number(execFileSync('df', ['--output=used', '-k', mnt], { encoding: 'utf8' }).split('\n')[1]!.trim());
    expect(usedKiB).toBeLessThan(2 * 1024 * 1024);

    for (const id of [clone.volumeId, vol.volumeId]) await json(vbs!, 'delete-volume', id);
    await json(vbs!, 'delete-snapshot', snap.snapshotId);
  });
});
