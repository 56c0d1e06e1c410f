import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { describe, expect, it } from 'vitest';
import { VbsError } from '../../src/core/errors.js';
import { InstanceLocator } from '../../src/front/instances.js';
import type { InstanceResolver, Placement } from '../../src/resolver/types.js';

/** A resolver that knows a fixed table and counts its questions. */
function table(name: string, known: Record<string, Omit<Placement, 'resolver'> & { owner: string }>) {
  const r = {
    name,
    asked: 0,
    async resolve(id: string, owner: string): Promise<Placement | undefined> {
      r.asked++;
      const k = known[id];
      return k && k.owner === owner ? { vmmHost: k.vmmHost, vmId: k.vmId, state: k.state, running: k.running, resolver: name } : undefined;
    },
  };
  return r;
}

const failing: InstanceResolver = {
  name: 'down',
  resolve: async () => {
    throw new VbsError('ServiceUnavailable', 'The down instance resolver cannot answer now: it is down.');
  },
};

async function codeOf(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => 'no fault',
    (e: unknown) => (e instanceof VbsError ? e.code : String(e)),
  );
}

describe('InstanceLocator: the front\'s resolution', () => {
  const a = table('a', { 'i-00000001': { vmmHost: 'node1', vmId: 'wrksp-1', state: 'Running', running: true, owner: 'alice' } });
  const b = table('b', {
    'i-00000001': { vmmHost: 'node2', vmId: 'wrksp-9', state: 'Running', running: true, owner: 'alice' },
    'i-00000002': { vmmHost: 'node2', vmId: 'wrksp-2', state: 'Paused', running: false, owner: 'alice' },
  });

  it('tries the resolvers in order; the first that knows the instance decides', async () => {
    const loc = new InstanceLocator([a, b], 0);
    expect(await loc.locate('i-00000001', 'alice')).toMatchObject({ vmmHost: 'node1', vmId: 'wrksp-1', resolver: 'a' });
    expect(await loc.locate('i-00000002', 'alice').catch((e: VbsError) => e.code)).toBe('IncorrectInstanceState');
    expect(await codeOf(loc.locate('i-00000003', 'alice'))).toBe('InvalidInstanceID.NotFound');
    expect(await codeOf(loc.locate('i-00000001', 'bob'))).toBe('InvalidInstanceID.NotFound');
  });

  it('a resolver that is down before the one that knows is ServiceUnavailable: no guess past it', async () => {
    expect(await codeOf(new InstanceLocator([failing, a], 0).locate('i-00000001', 'alice'))).toBe('ServiceUnavailable');
  });

  it('caches running placements for cacheMs, per owner; forget() drops one (after a failed attach)', async () => {
    let now = 1_000;
    const c = table('c', { vm1: { vmmHost: 'h', vmId: 'vm1', state: 'listed', running: true, owner: 'alice' } });
    const loc = new InstanceLocator([c], 5_000, () => now);
    await loc.locate('vm1', 'alice');
    await loc.locate('vm1', 'alice');
    expect(c.asked).toBe(1);
    now += 5_001;
    await loc.locate('vm1', 'alice');
    expect(c.asked).toBe(2);
    loc.forget('vm1', 'alice');
    await loc.locate('vm1', 'alice');
    expect(c.asked).toBe(3);
  });

  it('AttachVolume takes exactly one form; DetachVolume does not mix them', async () => {
    const loc = new InstanceLocator([a], 0);
    const target = async (input: XmlRecord) => loc.attachTarget(loc.attachForm(input), 'alice');
    expect(await codeOf(target({ instanceId: 'i-00000001', vmmHost: 'node1', vmId: 'x' }))).toBe('InvalidParameterCombination');
    expect(await codeOf(target({ instanceId: 'i-00000001', vmId: 'x' }))).toBe('InvalidParameterCombination');
    expect(await codeOf(target({}))).toBe('InvalidParameterCombination');
    expect(await codeOf(target({ vmmHost: 'node1' }))).toBe('MissingParameter');
    expect(await codeOf(target({ instanceId: '--help' }))).toBe('InvalidParameterValue');
    expect(await target({ instanceId: 'i-00000001' })).toEqual({ vmmHost: 'node1', vmId: 'wrksp-1', instanceId: 'i-00000001' });
    expect(await target({ vmmHost: 'Node1', vmId: 'vm1' })).toEqual({ vmmHost: 'node1', vmId: 'vm1' });
    expect(() => loc.detachInstance({ instanceId: 'i-00000001', vmmHost: 'node1' })).toThrow(/not both/);
    expect(loc.detachInstance({ instanceId: 'i-00000001' })).toBe('i-00000001');
    expect(loc.detachInstance({})).toBeUndefined();
  });
});
