import { describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { VbsError } from '../../src/core/errors.js';
import { Zones } from '../../src/front/zones.js';

/** Issue 18: a zone is a group of volume delegates; volumes are placed in the zone asked for. */
describe('availability zones (src/front/zones.ts)', () => {
  it('is one zone of every delegate by default, named after the region', () => {
    const z = new Zones('vbs-1', ['a', 'b'], undefined);
    expect(z.names()).toEqual(['vbs-1a']);
    expect([z.pick(undefined), z.pick(undefined), z.pick('vbs-1a')].map((p) => p.delegate)).toEqual(['a', 'b', 'a']);
  });

  it('places a volume on the delegates of the zone asked for, in turn, and refuses an unknown zone', () => {
    const z = new Zones('r', ['a', 'b', 'c'], [
      { name: 'r-1', volumeDelegates: ['a'] },
      { name: 'r-2', volumeDelegates: ['b', 'c'] },
    ]);
    expect([z.pick('r-2'), z.pick('r-2'), z.pick('r-2')].map((p) => p.delegate)).toEqual(['b', 'c', 'b']);
    expect(z.pick('r-1')).toEqual({ delegate: 'a', zone: 'r-1' });
    expect(z.zoneOf('c')).toBe('r-2');
    expect(() => z.pick('r-3')).toThrow(VbsError);
  });

  it('refuses a configuration where a delegate is in no zone, in two, or is not a delegate', () => {
    expect(() => new Zones('r', ['a', 'b'], [{ name: 'r-1', volumeDelegates: ['a'] }])).toThrow(/in no zone/);
    expect(() => new Zones('r', ['a'], [{ name: 'r-1', volumeDelegates: ['a'] }, { name: 'r-2', volumeDelegates: ['a'] }])).toThrow(/two zones/);
    expect(() => new Zones('r', ['a'], [{ name: 'r-1', volumeDelegates: ['a', 'x'] }])).toThrow(/not among/);
  });

  it('gives volumes recorded before zones their delegate\'s zone', () => {
    const db = new Database(':memory:');
    db.exec("CREATE TABLE volumes (volume_id TEXT, delegate TEXT, availability_zone TEXT); INSERT INTO volumes VALUES ('v1', 'b', NULL), ('v2', 'gone', NULL), ('v3', 'a', 'r-1')");
    new Zones('r', ['a', 'b'], [{ name: 'r-1', volumeDelegates: ['a'] }, { name: 'r-2', volumeDelegates: ['b'] }]).backfill(db);
    expect(db.prepare('SELECT volume_id, availability_zone FROM volumes ORDER BY volume_id').all()).toEqual([
      { volume_id: 'v1', availability_zone: 'r-2' },
      { volume_id: 'v2', availability_zone: 'r-1' },
      { volume_id: 'v3', availability_zone: 'r-1' },
    ]);
  });
});
