import { describe, expect, it } from 'vitest';
import { VbsError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/log.js';
import { openDatabase } from '../../src/db/database.js';
import { Metadata } from '../../src/db/metadata.js';
import { VmAssignments } from '../../src/db/vm-assignments.js';
import { DelegatePool } from '../../src/front/delegates.js';
import { InstanceLocator } from '../../src/front/instances.js';
import { FrontService } from '../../src/front/service.js';
import { FrontWorkflows } from '../../src/front/workflows.js';
import type { Placement } from '../../src/resolver/types.js';
import type { CallContext } from '../../src/soap/server.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { FakeDelegate } from '../workflows/fakes.js';

/**
 * Issue 17 item 7: a user attaches only into instances they own. The host +
 * VM form reaches, for a user, only the VMs an administrator assigned to
 * them; a cloud instance must be theirs (the resolver says so); an
 * administrator attaches anywhere. Every refusal is the answer an unknown
 * instance gets, and names nothing of another tenant's.
 */
function front() {
  const db = openDatabase(':memory:');
  const meta = new Metadata(db);
  const node1 = new FakeDelegate();
  const pool = new DelegatePool(new Map([['local', new FakeDelegate()]]), new Map([['node1', node1]]));
  const wf = new FrontWorkflows(db, meta, pool, silentLogger);
  // A cloud resolver: i-0000b0b0 is bob's instance, running as vm-b on node1.
  const cloud = {
    name: 'cloud',
    async resolve(id: string, owner: string, admin = false): Promise<Placement | undefined> {
      if (id === 'i-0000b0b0' && (owner === 'bob' || admin)) return { vmmHost: 'node1', vmId: 'vm-b', state: 'running', running: true, resolver: 'cloud' };
      return undefined;
    },
  };
  const handlers = new FrontService(meta, pool, wf, { admins: ['root'] }, new InstanceLocator([cloud], 0)).handlers();
  const call = (op: string, input: XmlRecord, caller: string) => handlers[op]!(input, { caller, requestId: 't', log: silentLogger } as CallContext) as Promise<XmlRecord>;
  const volume = async (caller: string) => {
    const id = String(((await call('CreateVolume', { size: 1 }, caller)).volume as XmlRecord).volumeId);
    meta.setVolumeStatus(id, ['creating'], 'available');
    return id;
  };
  return { meta, node1, call, volume, assignments: new VmAssignments(db) };
}

async function faultOf(p: Promise<unknown>): Promise<VbsError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof VbsError) return err;
    throw err;
  }
  throw new Error('expected a fault');
}

const onVm = (volumeId: string, vmId: string, device = 'xvdb', mode = 'w') => ({ volumeId, vmmHost: 'node1', vmId, device, mode });

describe('attach into owned instances only', () => {
  it("a user's host + VM attach into another tenant's VM is refused as an unknown VM, and nothing starts", async () => {
    const f = front();
    f.assignments.assign('node1', 'vm-b', 'bob');
    const mine = await f.volume('alice');
    const other = await faultOf(f.call('AttachVolume', onVm(mine, 'vm-b'), 'alice'));
    const unknown = await faultOf(f.call('AttachVolume', onVm(mine, 'no-such-vm'), 'alice'));
    const unassigned = await faultOf(f.call('AttachVolume', onVm(mine, 'vm-free'), 'alice'));
    const badHost = await faultOf(f.call('AttachVolume', { ...onVm(mine, 'vm-b'), vmmHost: 'nowhere' }, 'alice'));
    for (const e of [other, unknown, unassigned, badHost]) {
      expect(e.code).toBe('InvalidInstanceID.NotFound');
      expect(e.message).not.toMatch(/bob/);
    }
    expect(f.meta.attachmentsOf([mine])).toEqual([]);
    expect(f.node1.calls).not.toContain('AttachDisk');
  });

  it("a user's instance id of another tenant's instance is refused as an unknown one", async () => {
    const f = front();
    const mine = await f.volume('alice');
    const other = await faultOf(f.call('AttachVolume', { volumeId: mine, instanceId: 'i-0000b0b0', device: 'xvdb' }, 'alice'));
    const unknown = await faultOf(f.call('AttachVolume', { volumeId: mine, instanceId: 'i-ffffffff', device: 'xvdb' }, 'alice'));
    expect([other.code, unknown.code]).toEqual(['InvalidInstanceID.NotFound', 'InvalidInstanceID.NotFound']);
    expect(other.message).toBe(unknown.message.replace('i-ffffffff', 'i-0000b0b0'));
  });

  it('a VM an administrator assigned to a user takes their volumes; taken back, it does not', async () => {
    const f = front();
    f.assignments.assign('NODE1', 'vm-a', 'alice'); // host names are case-insensitive
    const mine = await f.volume('alice');
    const a = await f.call('AttachVolume', onVm(mine, 'vm-a'), 'alice');
    expect(a.attachment).toMatchObject({ vmmHost: 'node1', vmId: 'vm-a', status: 'attached' });
    await f.call('DetachVolume', { volumeId: mine }, 'alice');
    f.assignments.unassign('node1', 'vm-a');
    expect((await faultOf(f.call('AttachVolume', onVm(mine, 'vm-a'), 'alice'))).code).toBe('InvalidInstanceID.NotFound');
  });

  it('an administrator attaches anywhere: unassigned VMs, assigned ones and any tenant\'s instance', async () => {
    const f = front();
    f.assignments.assign('node1', 'vm-b', 'bob');
    const [v1, v2, v3] = [await f.volume('root'), await f.volume('root'), await f.volume('alice')];
    expect((await f.call('AttachVolume', onVm(v1, 'vm1'), 'root')).attachment).toMatchObject({ vmId: 'vm1', status: 'attached' });
    expect((await f.call('AttachVolume', onVm(v2, 'vm-b', 'xvdc'), 'root')).attachment).toMatchObject({ vmId: 'vm-b', status: 'attached' });
    const byId = await f.call('AttachVolume', { volumeId: v3, instanceId: 'i-0000b0b0', device: 'xvdd' }, 'root');
    expect(byId.attachment).toMatchObject({ vmmHost: 'node1', vmId: 'vm-b', instanceId: 'i-0000b0b0', status: 'attached' });
  });

  it("a device taken on the user's own VM by another tenant's volume is refused without naming it", async () => {
    const f = front();
    f.assignments.assign('node1', 'vm-a', 'alice');
    const bobs = await f.volume('bob');
    await f.call('AttachVolume', onVm(bobs, 'vm-a'), 'root'); // an administrator put bob's volume on alice's VM
    const mine = await f.volume('alice');
    const e = await faultOf(f.call('AttachVolume', onVm(mine, 'vm-a'), 'alice'));
    expect(e.code).toBe('InvalidParameterValue');
    expect(e.message).not.toContain(bobs);
    expect(e.message).not.toMatch(/bob/);
  });
});
