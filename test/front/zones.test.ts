import { describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { VbsError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/log.js';
import { openDatabase } from '../../src/db/database.js';
import { Metadata } from '../../src/db/metadata.js';
import { ACTIONS } from '../../src/ec2/operations.js';
import { Params } from '../../src/ec2/params.js';
import { ec2Code, errorStatus } from '../../src/ec2/xml.js';
import { DelegatePool } from '../../src/front/delegates.js';
import { DelegateHealth } from '../../src/front/health.js';
import { FrontService } from '../../src/front/service.js';
import { FrontWorkflows } from '../../src/front/workflows.js';
import { Zones } from '../../src/front/zones.js';
import type { CallContext } from '../../src/soap/server.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { FakeDelegate } from '../workflows/fakes.js';

/** A fake volume delegate that answers the health probe (WaitObjects) while it is up. */
class Probed extends FakeDelegate {
  down = false;
  override async call(op: string, i: XmlRecord): Promise<XmlRecord> {
    if (op === 'WaitObjects') {
      if (this.down) throw new VbsError('ServiceUnavailable', 'the delegate does not answer');
      return { object: [] };
    }
    if (this.down) throw new VbsError('ServiceUnavailable', 'the delegate does not answer');
    return super.call(op, i);
  }
}

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

  it('is available, impaired or unavailable by how many of its delegates answer; picks only those that do', () => {
    const down = new Set<string>();
    const z = new Zones('r', ['a', 'b', 'c'], [
      { name: 'r-1', volumeDelegates: ['a'] },
      { name: 'r-2', volumeDelegates: ['b', 'c'] },
    ]);
    z.watch((d) => down.has(d));
    expect(z.status().map((s) => s.state)).toEqual(['available', 'available']);
    down.add('b');
    expect(z.status()).toEqual([
      { zoneName: 'r-1', state: 'available', messages: [] },
      { zoneName: 'r-2', state: 'impaired', messages: ['1 of the 2 volume delegates of r-2 do not answer.'] },
    ]);
    expect([z.pick('r-2'), z.pick('r-2')].map((p) => p.delegate)).toEqual(['c', 'c']);
    down.add('a');
    expect(z.status(['r-1'])[0]!.state).toBe('unavailable');
    expect(() => z.pick('r-1')).toThrow(expect.objectContaining({ code: 'InsufficientCapacity', message: expect.stringContaining('r-1 is unavailable') }));
    // Without a zone asked for: the first that takes volumes.
    expect(z.pick(undefined)).toEqual({ delegate: 'c', zone: 'r-2' });
    down.clear();
    expect(z.pick('r-1')).toEqual({ delegate: 'a', zone: 'r-1' });
  });
});

describe("zones' state through the front and the EC2 API", () => {
  it('reports a zone whose delegates stopped answering, and refuses CreateVolume there until they answer', async () => {
    const db = openDatabase(':memory:');
    const meta = new Metadata(db);
    const a = new Probed();
    const b = new Probed();
    const pool = new DelegatePool(new Map([['a', a], ['b', b]]), new Map());
    const zones = new Zones('vbs-1', ['a', 'b'], [
      { name: 'vbs-1a', volumeDelegates: ['a'] },
      { name: 'vbs-1b', volumeDelegates: ['b'] },
    ]);
    const handlers = new FrontService(meta, pool, new FrontWorkflows(db, meta, pool, silentLogger), { zones }).handlers();
    // A delegate's return starts a reconcile that takes as long as the deployment is large: here, until the test ends it.
    let reconciled: () => void = () => {};
    const returns: string[] = [];
    const health = new DelegateHealth(pool, silentLogger, 60_000, async (t) => {
      returns.push(t.name);
      await new Promise<void>((r) => (reconciled = r));
    });
    zones.watch(
      (d) => health.volumeDelegateDown(d),
      (names) => health.recheckVolumeDelegates(names),
    );
    const ctx = { caller: 'alice', admin: false, requestId: 't', log: silentLogger } as CallContext;
    const invoke = async (op: string, input: XmlRecord): Promise<XmlRecord> => handlers[op]!(input, ctx);
    const ec2 = (action: string, pairs: [string, string][]) => ACTIONS[action]!.run(Params.from(pairs), invoke, { caller: 'alice', devicePrefix: 'xvd' }).then((x) => x.join(''));

    await health.probeOnce();
    expect(await ec2('DescribeAvailabilityZones', [])).toContain('<zoneName>vbs-1b</zoneName><zoneState>available</zoneState>');
    b.down = true;
    await health.probeOnce();
    const xml = await ec2('DescribeAvailabilityZones', [['ZoneName.1', 'vbs-1b']]);
    expect(xml).toContain('<zoneName>vbs-1b</zoneName><zoneState>unavailable</zoneState>');
    expect(xml).toContain('<messageSet><item><message>1 of the 1 volume delegates of vbs-1b do not answer.</message></item></messageSet>');
    expect(xml).not.toContain('vbs-1a');
    // EC2's zone filters: by state (and zone-name, zone-id, region-name), applied to what the front describes.
    const byState = await ec2('DescribeAvailabilityZones', [['Filter.1.Name', 'state'], ['Filter.1.Value.1', 'unavailable'], ['Filter.2.Name', 'region-name'], ['Filter.2.Value.1', 'vbs-1']]);
    expect(byState.match(/<zoneName>[^<]+<\/zoneName>/g)).toEqual(['<zoneName>vbs-1b</zoneName>']);
    expect(await ec2('DescribeAvailabilityZones', [['Filter.1.Name', 'zone-id'], ['Filter.1.Value.1', 'vbs-9z']])).toContain('<availabilityZoneInfo></availabilityZoneInfo>');
    await expect(ec2('DescribeAvailabilityZones', [['Filter.1.Name', 'opt-in-status'], ['Filter.1.Value.1', 'x']])).rejects.toMatchObject({ code: 'InvalidParameterValue' });
    // SOAP sees the same state.
    expect(((await invoke('DescribeAvailabilityZones', {})).zone as XmlRecord[]).map((z) => z.state)).toEqual(['available', 'unavailable']);

    const refused = await ec2('CreateVolume', [['Size', '1'], ['AvailabilityZone', 'vbs-1b']]).catch((e: VbsError) => e);
    expect(refused).toBeInstanceOf(VbsError);
    expect([ec2Code(refused as VbsError, 'CreateVolume'), errorStatus(refused as VbsError)]).toEqual(['InsufficientVolumeCapacity', 500]);
    expect(b.calls).not.toContain('CreateVolume');
    expect(db.prepare('SELECT count(*) AS n FROM volumes').get()).toEqual({ n: 0 });
    // The other zone still takes volumes.
    expect(await ec2('CreateVolume', [['Size', '1'], ['AvailabilityZone', 'vbs-1a']])).toContain('<availabilityZone>vbs-1a</availabilityZone>');

    // Back before the next probe: the front looks again before refusing, and the create goes there,
    // without waiting for the reconcile the return started.
    b.down = false;
    expect(health.volumeDelegateDown('b')).toBe(true);
    expect(await ec2('CreateVolume', [['Size', '1'], ['AvailabilityZone', 'vbs-1b']])).toContain('<availabilityZone>vbs-1b</availabilityZone>');
    expect(health.volumeDelegateDown('b')).toBe(false);
    expect(returns).toEqual(['b']);
    // Down and back again while that reconcile runs: it starts no second one beside it.
    b.down = true;
    await health.probeOnce();
    b.down = false;
    await health.recheckVolumeDelegates(['b']);
    expect(health.volumeDelegateDown('b')).toBe(false);
    expect(returns).toEqual(['b']);
    reconciled();
    db.close();
  });
});
