import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../../src/db/database.js';
import { Metadata } from '../../src/db/metadata.js';
import { TagStore } from '../../src/db/tags.js';
import { describeSnapshots, describeVolumes } from '../../src/front/describe.js';
import { filtersHash, parseFilters } from '../../src/front/query.js';
import { MAX_PATTERN_CHARS, MAX_STARS, parseFilterValue, Wildcard } from '../../src/core/wildcard.js';
import { toHypervisorDeviceFilter } from '../../src/ec2/devices.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';

/**
 * EC2's wildcards in filter values (src/core/wildcard.ts): `*` any run, `?`
 * one character, `\` the next character literally; matched by SQLite's GLOB
 * on a real database, with every other character of the value literal
 * (GLOB's `[`, SQL's `%` and `_` included).
 */
describe('parseFilterValue', () => {
  it('is an exact value without unescaped wildcards, escapes removed', () => {
    expect(parseFilterValue('web', 'f')).toBe('web');
    expect(parseFilterValue('\\*amazon\\?\\\\', 'f')).toBe('*amazon?\\');
    expect(parseFilterValue('a\\', 'f')).toBe('a\\'); // a trailing lone backslash is itself
    expect(parseFilterValue('[x]%_', 'f')).toBe('[x]%_');
  });

  it('is a GLOB pattern with wildcards, other characters bracketed or kept literal', () => {
    const w = parseFilterValue('we?-*', 'f') as Wildcard;
    expect(w).toBeInstanceOf(Wildcard);
    expect(w.glob).toBe('we?-*');
    expect((parseFilterValue('[a]*\\*\\?', 'f') as Wildcard).glob).toBe('[[]a]*[*][?]');
    expect((parseFilterValue('a***b', 'f') as Wildcard).glob).toBe('a*b'); // a run of stars is one
  });

  it('bounds a pattern: its length, its stars, no control characters', () => {
    expect(() => parseFilterValue(`${'a'.repeat(MAX_PATTERN_CHARS)}*`, 'filter tag:x')).toThrow(/at most 512 characters/);
    expect(() => parseFilterValue('*a'.repeat(MAX_STARS + 1), 'f')).toThrow(/at most 8 wildcards/);
    expect(parseFilterValue('*a'.repeat(MAX_STARS), 'f')).toBeInstanceOf(Wildcard);
    expect(() => parseFilterValue('a*\n', 'f')).toThrow(/control character/);
  });

  it('binds page tokens to the pattern, not to its text as an exact value', () => {
    const exact = parseFilters('volume', [{ name: 'tag:Name', value: ['*'] }], { kind: 'all' });
    const escaped = parseFilters('volume', [{ name: 'tag:Name', value: ['\\*'] }], { kind: 'all' });
    expect(filtersHash('volume', exact)).not.toBe(filtersHash('volume', escaped));
  });

  it("refuses patterns where EC2's values are numbers, and a user's owner pattern", () => {
    expect(() => parseFilters('volume', [{ name: 'size', value: ['1*'] }], { kind: 'all' })).toThrow(/size/);
    expect(() => parseFilters('snapshot', [{ name: 'owner', value: ['*'] }], { kind: 'owner', owner: 'alice' })).toThrow(/administrators/);
    expect(() => parseFilters('volume', [{ name: 'volumeId', value: ['vol-\\*'] }], { kind: 'all' })).toThrow(/volumeId/);
  });

  it('maps an EC2 device pattern to the hypervisor\'s names', () => {
    expect(toHypervisorDeviceFilter('/dev/sd*', 'xvd')).toBe('xvd*');
    expect(toHypervisorDeviceFilter('/dev/xvd?', 'vd')).toBe('vd?');
    expect(toHypervisorDeviceFilter('/dev/*', 'xvd')).toBe('*');
    expect(toHypervisorDeviceFilter('/dev/sdf', 'xvd')).toBe('xvdf');
  });
});

describe('wildcard filters on a real database', () => {
  let db: Db;
  let meta: Metadata;
  let tags: TagStore;
  const volId = (n: number) => `vol-${n.toString(16).padStart(17, '0')}`;
  const snapId = (n: number) => `snap-${n.toString(16).padStart(17, '0')}`;
  const names = ['web-1', 'web-22', 'db-1', '*lit?', '[a]%_\\', 'wEb-3'];

  beforeAll(() => {
    db = openDatabase(':memory:');
    meta = new Metadata(db);
    tags = new TagStore(db);
    const at = new Date(Date.UTC(2026, 0, 1)).toISOString();
    const id = db.prepare('INSERT INTO ids (id, kind, created_at) VALUES (?, ?, ?)');
    const vol = db.prepare(`INSERT INTO volumes (volume_id, owner, size_gib, comment, snapshot_id, status, delegate, create_time, availability_zone) VALUES (?, 'alice', 1, '', NULL, ?, 'vd', ?, ?)`);
    const snap = db.prepare(`INSERT INTO snapshots (snapshot_id, owner, volume_id, size_gib, comment, status, delegate, create_time) VALUES (?, 'alice', ?, 1, '', 'completed', 'vd', ?)`);
    const att = db.prepare(`INSERT INTO attachments (volume_id, vmm_host, vm_id, device, mode, status, attach_time, instance_id) VALUES (?, 'hosta', ?, ?, 'w', 'attached', ?, ?)`);
    db.transaction(() => {
      names.forEach((name, n) => {
        id.run(volId(n), 'vol', at);
        vol.run(volId(n), n % 2 ? 'available' : 'in-use', at, n < 3 ? 'vbs-1a' : 'vbs-1b');
        id.run(snapId(n), 'snap', at);
        snap.run(snapId(n), volId(n), at);
        tags.put(volId(n), [{ key: 'Name', value: name }, { key: `k${n}`, value: '' }]);
        tags.put(snapId(n), [{ key: 'Name', value: name }]);
      });
      att.run(volId(0), 'vm0', 'xvdf', at, 'i-0');
      att.run(volId(2), 'vm2', 'xvdg', at, 'i-2');
    })();
  });

  afterAll(() => db.close());

  const scope = { kind: 'owner', owner: 'alice' } as const;
  const volumesBy = (filter: XmlRecord[]) =>
    (describeVolumes(meta, scope, { filter }, (ids) => tags.of(ids)).volume as XmlRecord[]).map((v) => names[Number.parseInt(String(v.volumeId).slice(4), 16)]);
  const snapshotsBy = (filter: XmlRecord[]) =>
    (describeSnapshots(meta, scope, { filter }, (ids) => tags.of(ids)).snapshot as XmlRecord[]).map((s) => names[Number.parseInt(String(s.snapshotId).slice(5), 16)]);
  const tagsBy = (filter: XmlRecord[]) => {
    const f = parseFilters('tag', filter, scope);
    return tags.list({ scope, keys: f.get('key'), values: f.get('value'), resourceIds: f.get('resourceId') }).map((t) => `${t.resource_id.slice(0, 4)}${t.key}=${t.value}`);
  };

  it("tag:KEY: * any run, ? one character, case-sensitive; values of one filter ORed", () => {
    expect(volumesBy([{ name: 'tag:Name', value: ['web-*'] }])).toEqual(['web-1', 'web-22']);
    expect(volumesBy([{ name: 'tag:Name', value: ['web-?'] }])).toEqual(['web-1']);
    expect(volumesBy([{ name: 'tag:Name', value: ['*-1', 'web-2?'] }])).toEqual(['web-1', 'web-22', 'db-1']);
    expect(volumesBy([{ name: 'tag:Name', value: ['*'] }])).toEqual(names);
  });

  it('escaped wildcards and GLOB/SQL specials are literal', () => {
    expect(volumesBy([{ name: 'tag:Name', value: ['\\*lit\\?'] }])).toEqual(['*lit?']);
    expect(volumesBy([{ name: 'tag:Name', value: ['\\**'] }])).toEqual(['*lit?']);
    expect(volumesBy([{ name: 'tag:Name', value: ['[a]%_\\\\'] }])).toEqual(['[a]%_\\']);
    expect(volumesBy([{ name: 'tag:Name', value: ['[a]*'] }])).toEqual(['[a]%_\\']);
    expect(volumesBy([{ name: 'tag:Name', value: ['%'] }])).toEqual([]);
  });

  it('other text filters of volumes: status, zone, id, tag key, attachment', () => {
    expect(volumesBy([{ name: 'status', value: ['in-*'] }])).toEqual(['web-1', 'db-1', '[a]%_\\']);
    expect(volumesBy([{ name: 'availabilityZone', value: ['vbs-1?'] }, { name: 'status', value: ['avail*'] }])).toEqual(['web-22', '*lit?', 'wEb-3']);
    expect(volumesBy([{ name: 'volumeId', value: ['vol-*4', 'vol-?'] }])).toEqual(['[a]%_\\']);
    expect(volumesBy([{ name: 'tagKey', value: ['k?'] }])).toEqual(names);
    expect(volumesBy([{ name: 'tagKey', value: ['k[12]'] }])).toEqual([]);
    expect(volumesBy([{ name: 'attachment.device', value: ['xvd*'] }, { name: 'attachment.instanceId', value: ['i-?'] }])).toEqual(['web-1', 'db-1']);
  });

  it('snapshots and tags take them too', () => {
    expect(snapshotsBy([{ name: 'tag:Name', value: ['?Eb*'] }])).toEqual(['wEb-3']);
    expect(snapshotsBy([{ name: 'snapshotId', value: ['snap-*5'] }])).toEqual(['wEb-3']);
    // EC2's description: the whole comment, exact or by pattern.
    db.prepare("UPDATE snapshots SET comment = 'nightly of web' WHERE snapshot_id = ?").run(snapId(1));
    expect(snapshotsBy([{ name: 'comment', value: ['nightly*'] }])).toEqual(['web-22']);
    expect(snapshotsBy([{ name: 'comment', value: ['nightly'] }])).toEqual([]);
    expect(snapshotsBy([{ name: 'comment', value: ['nightly of web'] }])).toEqual(['web-22']);
    expect(tagsBy([{ name: 'key', value: ['k*'] }, { name: 'resourceId', value: ['vol-*1'] }])).toEqual(['vol-k1=']);
    expect(tagsBy([{ name: 'value', value: ['web-2*'] }])).toEqual(['vol-Name=web-22', 'snapName=web-22']);
  });
});
