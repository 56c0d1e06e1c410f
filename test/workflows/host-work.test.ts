import { beforeAll, describe, expect, it } from 'vitest';
import { VbsError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/log.js';
import { openDatabase } from '../../src/db/database.js';
import { Metadata } from '../../src/db/metadata.js';
import { VmAssignments } from '../../src/db/vm-assignments.js';
import { DelegatePool } from '../../src/front/delegates.js';
import { FrontService } from '../../src/front/service.js';
import { FrontWorkflows } from '../../src/front/workflows.js';
import type { CallContext } from '../../src/soap/server.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { availableVolume, FakeDelegate, makeFront, unreachable, freshDb, useEngine } from './fakes.js';
import { ENGINES } from '../setup/engines.js';

/** An iSCSI volume delegate whose targets fence hosts, as the tgt back end does: exports name the admitted initiator. */
class FencingStorage extends FakeDelegate {
  override exportKind = 'iscsi' as const;
  override async call(op: string, i: XmlRecord): Promise<XmlRecord> {
    const r = await super.call(op, i);
    if (op === 'ExportVolume') return { export: { ...(r.export as XmlRecord), initiator: `iqn.2026-11.org.vbs.host:${String(i.vmmHost)}` } };
    if (op === 'UnexportVolume') return { ...r, fenced: true };
    return r;
  }
}

/** A front with two VMM hosts, `live` and `dead`. */
function twoHosts(storage: FakeDelegate = new FakeDelegate()) {
  const db = openDatabase(freshDb());
  const meta = new Metadata(db);
  const live = new FakeDelegate();
  const dead = new FakeDelegate();
  const pool = new DelegatePool(new Map([['local', storage]]), new Map([['live', live], ['dead', dead]]));
  const wf = new FrontWorkflows(db, meta, pool, silentLogger);
  // Users attach only into VMs assigned to them (issue 17 item 7).
  const assignments = new VmAssignments(db);
  for (const [host, vm] of [['live', 'vm2'], ['dead', 'vm1']] as const) assignments.assign(host, vm, 'alice');
  const handlers = new FrontService(meta, pool, wf).handlers();
  const call = async (op: string, input: XmlRecord, caller = 'alice') => handlers[op]!(input, { caller, requestId: 't', log: silentLogger } as CallContext);
  return { db, meta, wf, storage, live, dead, call };
}

const leftovers = (db: ReturnType<typeof openDatabase>) => (db.prepare('SELECT count(*) AS n FROM leftovers').get() as { n: number }).n;

describe.each(ENGINES)('on %s', (engine) => {
  beforeAll(() => useEngine(engine));

  describe('work on a dead host is per host (issue 16 item 5)', () => {
    it("a failed read-only attach's leftover on a dead host does not block the volume's detach elsewhere", async () => {
      const f = twoHosts();
      const vol = await availableVolume(f as never);
      await f.call('AttachVolume', { volumeId: vol, vmmHost: 'live', vmId: 'vm2', device: 'xvdb', mode: 'r' });
      // The dead host times out on the attach (it may have acted) and never answers the undo.
      f.dead.failures.set('AttachDisk', new VbsError('ServiceUnavailable', 'VmmDelegate dead timed out.'));
      f.dead.failures.set('DetachDisk', unreachable());
      await expect(f.call('AttachVolume', { volumeId: vol, vmmHost: 'dead', vmId: 'vm1', device: 'xvdb', mode: 'r' })).rejects.toThrow(/AttachDisk/);
      // The DetachDisk undo, and behind it the undos of the session and the export, which wait until the disk is gone.
      expect(leftovers(f.db)).toBe(4);

      await f.call('DetachVolume', { volumeId: vol, vmmHost: 'live', vmId: 'vm2' });
      // The dead host may still hold the disk: its attachment stays, detaching, and the volume in use.
      expect(f.meta.attachmentsOf([vol]).map((a) => [a.vmm_host, a.vm_id, a.status])).toEqual([['dead', 'vm1', 'detaching']]);
      expect(f.meta.volume(vol)?.status).toBe('in-use');
      // The dead host's own work is still there, for a retire or the host's return.
      expect(leftovers(f.db)).toBe(4);
    });
  });

  describe('forced detach (issue 17 item 9)', () => {
    it('fences the host at the target before releasing, without asking the VMM host; the owner may', async () => {
      const f = twoHosts(new FencingStorage());
      const vol = await availableVolume(f as never);
      await f.call('AttachVolume', { volumeId: vol, vmmHost: 'dead', vmId: 'vm1', device: 'xvdb', mode: 'w' });
      f.dead.failures.set('DetachDisk', unreachable());
      f.dead.calls.length = 0;
      const r = await f.call('DetachVolume', { volumeId: vol, vmmHost: 'dead', vmId: 'vm1', force: true });
      expect(r.attachment).toMatchObject({ status: 'detaching' });
      expect(f.storage.calls).toContain('UnexportVolume');
      expect(f.storage.exports.has(`${vol}@dead`)).toBe(false);
      expect(f.dead.calls).toEqual([]);
      expect(f.meta.attachmentsOf([vol])).toEqual([]);
      expect(f.meta.volume(vol)?.status).toBe('available');
    });

    it('keeps the attachment when the delegate cannot confirm the fence', async () => {
      const storage = new FencingStorage();
      const f = twoHosts(storage);
      const vol = await availableVolume(f as never);
      await f.call('AttachVolume', { volumeId: vol, vmmHost: 'dead', vmId: 'vm1', device: 'xvdb', mode: 'w' });
      storage.failures.set('UnexportVolume', new VbsError('ServiceUnavailable', 'VolumeDelegate timed out.'));
      await expect(f.call('DetachVolume', { volumeId: vol, vmmHost: 'dead', vmId: 'vm1', force: true })).rejects.toMatchObject({ code: 'ServiceUnavailable' });
      expect(f.meta.attachmentsOf([vol]).map((a) => a.status)).toEqual(['detaching']);
      expect(f.meta.volume(vol)?.status).toBe('in-use');
    });

    it('on storage that cannot fence a host (files), only an administrator may force', async () => {
      const f = makeFront();
      const vol = await availableVolume(f);
      await f.call('AttachVolume', { volumeId: vol, vmmHost: 'localhost', vmId: 'vm1', device: 'xvdb', mode: 'w' });
      await expect(f.call('DetachVolume', { volumeId: vol, force: true })).rejects.toMatchObject({
        code: 'UnauthorizedOperation',
        message: expect.stringMatching(/cannot keep one host out/),
      });
      expect(f.meta.attachmentsOf([vol]).map((a) => a.status)).toEqual(['attached']);
      await f.call('DetachVolume', { volumeId: vol, force: true }, 'admin');
      expect(f.meta.attachmentsOf([vol])).toEqual([]);
    });
  });
});
