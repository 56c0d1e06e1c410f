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

/** The front's AttachVolume/DetachVolume by instance id, over fake delegates and a table resolver. */
function front(opts: { down?: boolean } = {}) {
  const db = openDatabase(':memory:');
  const meta = new Metadata(db);
  const storage = new FakeDelegate();
  const node1 = new FakeDelegate();
  const node2 = new FakeDelegate();
  const pool = new DelegatePool(new Map([['local', storage]]), new Map([['node1', node1], ['node2', node2]]));
  const wf = new FrontWorkflows(db, meta, pool, silentLogger);
  const resolver = {
    name: 'table',
    asked: 0,
    down: opts.down ?? false,
    async resolve(id: string, owner: string): Promise<Placement | undefined> {
      resolver.asked++;
      if (resolver.down) throw new VbsError('ServiceUnavailable', 'The table instance resolver cannot answer now: down.');
      if (id === 'i-0a1b2c3d' && owner === 'alice') return { vmmHost: 'node2', vmId: 'wrksp-7', state: 'Running', running: true, resolver: 'table' };
      return undefined;
    },
  };
  const svc = new FrontService(meta, pool, wf, {}, new InstanceLocator([resolver], 60_000));
  new VmAssignments(db).assign('node1', 'vm1', 'alice'); // the host + VM form: a VM an administrator gave her
  const handlers = svc.handlers();
  const call = (op: string, input: XmlRecord, caller = 'alice') => handlers[op]!(input, { caller, requestId: 't', log: silentLogger } as CallContext) as Promise<XmlRecord>;
  const volume = async () => {
    const id = String(((await call('CreateVolume', { size: 1 })).volume as XmlRecord).volumeId);
    meta.setVolumeStatus(id, ['creating'], 'available');
    return id;
  };
  const workflows = () => db.prepare(`SELECT kind, data FROM workflows WHERE kind = 'AttachVolume' ORDER BY id`).all() as { kind: string; data: string }[];
  return { db, meta, node1, node2, resolver, call, volume, workflows };
}

describe('front: attach by instance id', () => {
  it('journals the instance id with the host and VM it resolved to, and records it on the attachment', async () => {
    const f = front();
    const vol = await f.volume();
    const r = await f.call('AttachVolume', { volumeId: vol, instanceId: 'i-0a1b2c3d', device: 'xvdb' });
    expect(r.attachment).toMatchObject({ vmmHost: 'node2', vmId: 'wrksp-7', instanceId: 'i-0a1b2c3d', status: 'attached' });
    expect(JSON.parse(f.workflows()[0]!.data)).toMatchObject({ volumeId: vol, vmmHost: 'node2', vmId: 'wrksp-7', instanceId: 'i-0a1b2c3d' });
    expect(f.meta.attachmentsOf([vol])[0]).toMatchObject({ vmm_host: 'node2', vm_id: 'wrksp-7', instance_id: 'i-0a1b2c3d' });
    expect(f.node2.calls).toContain('AttachDisk');
    expect(f.node1.calls).toEqual([]);
  });

  it('reuses a placement while cached, never after an attach to it failed', async () => {
    const f = front();
    const [a, b, c] = [await f.volume(), await f.volume(), await f.volume()];
    await f.call('AttachVolume', { volumeId: a, instanceId: 'i-0a1b2c3d', device: 'xvdb', mode: 'r' });
    await f.call('AttachVolume', { volumeId: b, instanceId: 'i-0a1b2c3d', device: 'xvdc', mode: 'r' });
    expect(f.resolver.asked).toBe(1);
    f.node2.failures.set('AttachDisk', new VbsError('OperationFailed', 'xm block-attach failed'));
    await expect(f.call('AttachVolume', { volumeId: c, instanceId: 'i-0a1b2c3d', device: 'xvdd' })).rejects.toMatchObject({ code: 'OperationFailed' });
    f.node2.failures.clear();
    await f.call('AttachVolume', { volumeId: c, instanceId: 'i-0a1b2c3d', device: 'xvdd' });
    expect(f.resolver.asked).toBe(2);
  });

  it('a resolver that is down starts nothing', async () => {
    const f = front({ down: true });
    const vol = await f.volume();
    await expect(f.call('AttachVolume', { volumeId: vol, instanceId: 'i-0a1b2c3d', device: 'xvdb' })).rejects.toMatchObject({ code: 'ServiceUnavailable' });
    expect(f.workflows()).toEqual([]);
    expect(f.meta.volume(vol)?.status).toBe('available');
    expect([...f.node1.calls, ...f.node2.calls]).toEqual([]);
  });

  it('someone else\'s or an unknown instance is InvalidInstanceID.NotFound, with nothing journaled', async () => {
    const f = front();
    const vol = await f.volume();
    await expect(f.call('AttachVolume', { volumeId: vol, instanceId: 'i-0a1b2c3d', device: 'xvdb' }, 'bob')).rejects.toMatchObject({ code: 'InvalidVolume.NotFound' });
    const bobs = String(((await f.call('CreateVolume', { size: 1 }, 'bob')).volume as XmlRecord).volumeId);
    f.meta.setVolumeStatus(bobs, ['creating'], 'available');
    await expect(f.call('AttachVolume', { volumeId: bobs, instanceId: 'i-0a1b2c3d', device: 'xvdb' }, 'bob')).rejects.toMatchObject({ code: 'InvalidInstanceID.NotFound' });
    await expect(f.call('AttachVolume', { volumeId: vol, instanceId: 'i-99999999', device: 'xvdb' })).rejects.toMatchObject({ code: 'InvalidInstanceID.NotFound' });
    expect(f.workflows()).toEqual([]);
  });

  it('DetachVolume by instance id picks that attachment among several', async () => {
    const f = front();
    const vol = await f.volume();
    await f.call('AttachVolume', { volumeId: vol, vmmHost: 'node1', vmId: 'vm1', device: 'xvdb', mode: 'r' });
    await f.call('AttachVolume', { volumeId: vol, instanceId: 'i-0a1b2c3d', device: 'xvdb', mode: 'r' });
    await expect(f.call('DetachVolume', { volumeId: vol })).rejects.toMatchObject({ code: 'MissingParameter' });
    await expect(f.call('DetachVolume', { volumeId: vol, instanceId: 'i-00000000' })).rejects.toMatchObject({ code: 'InvalidAttachment.NotFound' });
    const d = await f.call('DetachVolume', { volumeId: vol, instanceId: 'i-0a1b2c3d' });
    expect(d.attachment).toMatchObject({ vmmHost: 'node2', vmId: 'wrksp-7', instanceId: 'i-0a1b2c3d' });
    expect(f.meta.attachmentsOf([vol]).map((a) => a.vm_id)).toEqual(['vm1']);
  });
});
