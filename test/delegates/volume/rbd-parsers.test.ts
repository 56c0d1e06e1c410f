import { describe, expect, it } from 'vitest';
import { parseCephDf, parseChildren, parseRbdList } from '../../../src/delegates/volume/rbd-tools.js';
import { checkPlaceholder } from '../../../src/commands/placeholders.js';

/** The rbd and ceph outputs the back end reads, as Ceph 16 prints them (CEPH.md). */
describe('rbd output parsers', () => {
  it('rbd ls -l --format json: images with their parents, snapshots with their protection', () => {
    const out = JSON.stringify([
      { image: 'gone.vol-a', id: '1022', size: 1073741824, format: 2 },
      { image: 'gone.vol-a', id: '1022', snapshot: 'snap-1', snapshot_id: 4, size: 1073741824, format: 2, protected: 'true' },
      { image: 'vol-b', id: '1028', size: 2147483648, parent: { pool: 'vbs', pool_namespace: '', image: 'gone.vol-a', snapshot: 'snap-1' }, format: 2 },
      { image: 'vol-b', id: '1028', snapshot: 'snap-2', snapshot_id: 5, size: 2147483648, format: 2, protected: 'false' },
    ]);
    const pool = parseRbdList(out);
    expect([...pool.images.values()]).toEqual([
      { name: 'gone.vol-a', sizeBytes: 1073741824 },
      { name: 'vol-b', sizeBytes: 2147483648, parent: { image: 'gone.vol-a', snap: 'snap-1' } },
    ]);
    expect(pool.snaps).toEqual([
      { image: 'gone.vol-a', name: 'snap-1', sizeBytes: 1073741824, protected: true },
      { image: 'vol-b', name: 'snap-2', sizeBytes: 2147483648, protected: false },
    ]);
    expect(parseRbdList('').images.size).toBe(0); // an empty pool prints nothing
    expect(() => parseRbdList('rbd: error')).toThrow(/not JSON/);
    expect(() => parseRbdList('[{"image":"x"}]')).toThrow(/without image or size/);
  });

  it('ceph df --format json: the cluster and the pool', () => {
    const out = JSON.stringify({
      stats: { total_bytes: 10737418240, total_avail_bytes: 10433097728 },
      pools: [
        { name: 'device_health_metrics', id: 1, stats: { stored: 0, max_avail: 9896226816 } },
        { name: 'vbs', id: 2, stats: { stored: 67111952, objects: 36, max_avail: 9829044224 } },
      ],
    });
    expect(parseCephDf(out, 'vbs')).toEqual({ clusterBytes: 10737418240, storedBytes: 67111952, maxAvailBytes: 9829044224 });
    expect(() => parseCephDf(out, 'nope')).toThrow(/pool nope/);
  });

  it('rbd children --format json', () => {
    expect(parseChildren('[{"pool":"vbs","pool_namespace":"","image":"vol-b"}]')).toEqual(['vbs/vol-b']);
    expect(parseChildren('[]')).toEqual([]);
  });

  it('image and snapshot names in a pattern are VBS ids, never a path, a pool or a snapshot spec', () => {
    const id = `vol-${'0'.repeat(17)}`;
    for (const ok of [id, `part.${id}`, `gone.${id}`, `snap-${'a'.repeat(17)}`]) expect(() => checkPlaceholder('image', ok)).not.toThrow();
    for (const bad of ['vbs/x', `${id}@snap`, `other.${id}`, '--size', '', `${id}\n`]) {
      expect(() => checkPlaceholder('image', bad)).toThrow(/not acceptable/);
    }
    expect(() => checkPlaceholder('cephConf', 'relative/ceph.conf')).toThrow(/not acceptable/);
    expect(() => checkPlaceholder('timeoutSec', '0')).toThrow(/not acceptable/);
  });
});
