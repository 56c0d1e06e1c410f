import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CommandCatalog } from '../../../src/commands/catalog.js';
import { silentLogger } from '../../../src/core/log.js';
import { FileBackend } from '../../../src/delegates/volume/file-backend.js';
import { ObjectRecords, parseRecord } from '../../../src/delegates/volume/object-records.js';
import { volumeDelegateHandlers } from '../../../src/delegates/volume/service.js';
import { CommandRunner } from '../../../src/commands/runner.js';
import type { Record as XmlRecord } from '../../../src/soap/xml.js';
import { faultOf } from '../../fault-of.js';
import { cleanupDirs, COMMANDS, eventually, tempDir } from './helpers.js';

const VOL = (n: number) => `vol-${n.toString(16).padStart(17, '0')}`;
const SNAP = (n: number) => `snap-${n.toString(16).padStart(17, '0')}`;
const CREATED = '2026-12-07T10:00:00.000Z';

afterEach(() => cleanupDirs());

/** The delegate's handlers over a file back end whose records sit beside the data, as volume-delegate.json's default. */
function delegate(capacityGiB = 4) {
  const root = tempDir('vbs-records-');
  const backend = new FileBackend(root, new CommandRunner(CommandCatalog.fromFile(COMMANDS)), silentLogger, { capacityGiB, reserveGiB: 0 });
  const handlers = volumeDelegateHandlers(backend, new ObjectRecords(root));
  const ctx = { caller: 'vbs-front', admin: false, requestId: 'test', log: silentLogger };
  const call = async (op: string, input: XmlRecord = {}) => handlers[op]!(input, ctx);
  const ready = (id: string) => eventually(async () => ((await backend.describe(id)).state === 'ready' ? true : undefined));
  const described = async (id: string) => ((await call('DescribeObjects', { id: [id] })).object as XmlRecord[])[0]!;
  return { root, call, ready, described };
}

describe('volume delegate: the record beside each object', { timeout: 120_000 }, () => {
  it('a create writes the record beside the data; DescribeObjects reports it; a snapshot records its source and size; delete removes it', async () => {
    const { root, call, ready, described } = delegate();
    await call('CreateVolume', { volumeId: VOL(1), sizeGiB: 1, owner: 'alice', createdAt: CREATED, zone: 'vbs-1a' });
    await ready(VOL(1));
    expect(JSON.parse(readFileSync(join(root, `${VOL(1)}.record.json`), 'utf8'))).toEqual({ id: VOL(1), owner: 'alice', createdAt: CREATED, sizeGiB: 1, zone: 'vbs-1a' });
    expect(await described(VOL(1))).toMatchObject({ id: VOL(1), state: 'ready', record: { owner: 'alice', sizeGiB: 1, createdAt: CREATED, zone: 'vbs-1a' } });

    // No size given: the snapshot takes its volume's.
    await call('CreateSnapshot', { snapshotId: SNAP(1), volumeId: VOL(1), owner: 'alice', createdAt: CREATED });
    await ready(SNAP(1));
    expect(await described(SNAP(1))).toMatchObject({ record: { owner: 'alice', volumeId: VOL(1), sizeGiB: 1 } });
    await call('CreateVolume', { volumeId: VOL(2), sizeGiB: 2, snapshotId: SNAP(1), owner: 'bob', createdAt: CREATED });
    await ready(VOL(2));
    expect(await described(VOL(2))).toMatchObject({ record: { owner: 'bob', sizeGiB: 2, snapshotId: SNAP(1) } });

    // A retried create keeps the first record.
    await call('CreateVolume', { volumeId: VOL(2), sizeGiB: 2, snapshotId: SNAP(1), owner: 'bob', createdAt: '2026-12-07T11:00:00.000Z' });
    expect(await described(VOL(2))).toMatchObject({ record: { createdAt: CREATED } });

    await call('DeleteObject', { id: VOL(2) });
    await call('DeleteObject', { id: SNAP(1) });
    expect(readdirSync(root).sort()).toEqual([`${VOL(1)}.img`, `${VOL(1)}.record.json`]);
  });

  it('a grown volume records its new size', async () => {
    const { call, ready, described } = delegate();
    await call('CreateVolume', { volumeId: VOL(3), sizeGiB: 1, owner: 'alice', createdAt: CREATED });
    await ready(VOL(3));
    await call('GrowVolume', { volumeId: VOL(3), sizeGiB: 2 });
    expect(await described(VOL(3))).toMatchObject({ record: { sizeGiB: 2 } });
  });

  it('a refused create leaves no record; a hostile owner or time is a client fault and nothing is written', async () => {
    const { root, call } = delegate(1);
    expect((await faultOf(call('CreateVolume', { volumeId: VOL(4), sizeGiB: 2, owner: 'alice', createdAt: CREATED }))).code).toBe('InsufficientCapacity');
    for (const bad of [{ owner: '../etc' }, { owner: 'a b' }, { owner: 'alice', createdAt: 'yesterday' }, { owner: 'alice', zone: 'Zone A' }]) {
      expect((await faultOf(call('CreateVolume', { volumeId: VOL(5), sizeGiB: 1, createdAt: CREATED, ...bad }))).code).toBe('InvalidParameterValue');
    }
    expect(readdirSync(root)).toEqual([]);
  });

  it('a create from an older front (no owner) writes no record, and the object is reported without one', async () => {
    const { root, call, ready, described } = delegate();
    await call('CreateVolume', { volumeId: VOL(6), sizeGiB: 1 });
    await ready(VOL(6));
    expect(readdirSync(root)).toEqual([`${VOL(6)}.img`]);
    expect((await described(VOL(6))).record).toBeUndefined();
  });

  it('a record that is not a valid one (edited, truncated, for another id) is ignored', async () => {
    const { root, call, ready, described } = delegate();
    await call('CreateVolume', { volumeId: VOL(7), sizeGiB: 1, owner: 'alice', createdAt: CREATED });
    await ready(VOL(7));
    const file = join(root, `${VOL(7)}.record.json`);
    for (const text of ['{"id":"', JSON.stringify({ id: VOL(8), owner: 'alice', createdAt: CREATED }), JSON.stringify({ id: VOL(7), owner: 'x y', createdAt: CREATED })]) {
      writeFileSync(file, text);
      expect((await described(VOL(7))).record).toBeUndefined();
    }
  });

  it('parseRecord takes only the fields of the kind: a volume has no source volume, a snapshot no source snapshot, and may have no volume (an import)', () => {
    expect(parseRecord(VOL(1), JSON.stringify({ id: VOL(1), owner: 'a', createdAt: CREATED, volumeId: VOL(2) }))).toBeUndefined();
    expect(parseRecord(SNAP(1), JSON.stringify({ id: SNAP(1), owner: 'a', createdAt: CREATED, snapshotId: SNAP(2) }))).toBeUndefined();
    expect(parseRecord(SNAP(1), JSON.stringify({ id: SNAP(1), owner: 'a', createdAt: CREATED, sizeGiB: 8 }))).toEqual({ id: SNAP(1), owner: 'a', createdAt: CREATED, sizeGiB: 8 });
    expect(parseRecord(VOL(1), 'x'.repeat(5000))).toBeUndefined();
  });
});
