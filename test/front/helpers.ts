import { silentLogger } from '../../src/core/log.js';
import { openDatabase, type Db } from '../../src/db/database.js';
import { Metadata } from '../../src/db/metadata.js';
import { DelegatePool } from '../../src/front/delegates.js';
import { FrontService, type AdminOptions } from '../../src/front/service.js';
import { FrontWorkflows } from '../../src/front/workflows.js';
import type { CallContext } from '../../src/soap/server.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { FakeDelegate } from '../workflows/fakes.js';

export interface Finding {
  kind: string;
  resource: string;
  location: string;
  detail: string;
  repaired: boolean;
}

export interface CheckFront {
  db: Db;
  meta: Metadata;
  wf: FrontWorkflows;
  storage: FakeDelegate;
  vmm: FakeDelegate;
  /** Called between the two observations of a check (its settle wait). */
  onSettle: () => void;
  call(op: string, input: XmlRecord, caller?: string): Promise<XmlRecord>;
  check(repair?: boolean): Promise<{ clean: boolean; finding: Finding[] }>;
  /** What the front runs when a delegate comes back after an outage. */
  reconcile(): Promise<void>;
}

/** A front over fake delegates whose checks do not wait between their two observations. */
export function checkFront(options: AdminOptions = {}): CheckFront {
  const db = openDatabase(':memory:');
  const meta = new Metadata(db);
  const storage = new FakeDelegate();
  const vmm = new FakeDelegate();
  const pool = new DelegatePool(new Map([['local', storage]]), new Map([['localhost', vmm]]));
  const wf = new FrontWorkflows(db, meta, pool, silentLogger);
  const front: CheckFront = {
    db,
    meta,
    wf,
    storage,
    vmm,
    onSettle: () => {},
    call: async (op, input, caller = 'admin') => handlers[op]!(input, { caller, requestId: 't', log: silentLogger } as CallContext),
    check: async (repair = false) => (await front.call('CheckConsistency', { repair })) as unknown as { clean: boolean; finding: Finding[] },
    reconcile: () => svc.reconcile(silentLogger),
  };
  const svc = new FrontService(meta, pool, wf, {
    checkSettleMs: 0,
    checkCallTimeoutMs: 200,
    checkSleep: async () => front.onSettle(),
    ...options,
  });
  const handlers = svc.handlers();
  return front;
}

export async function createVolume(f: CheckFront, status: 'available' | 'creating' = 'available', caller = 'admin'): Promise<string> {
  const r = await f.call('CreateVolume', { size: 1 }, caller);
  const id = String((r.volume as XmlRecord).volumeId);
  if (status === 'available') f.meta.setVolumeStatus(id, ['creating'], 'available');
  return id;
}

export async function attach(f: CheckFront, volumeId: string, vmId = 'vm1', device = 'xvdb', mode = 'w'): Promise<void> {
  await f.call('AttachVolume', { volumeId, vmmHost: 'localhost', vmId, device, mode });
}

export async function snapshotOf(f: CheckFront, volumeId: string): Promise<string> {
  const r = await f.call('CreateSnapshot', { volumeId });
  const id = String((r.snapshot as XmlRecord).snapshotId);
  f.meta.setSnapshotStatus(id, ['pending'], 'completed', null, 100);
  return id;
}

/** The findings without their details, for exact comparisons. */
export function kinds(r: { finding: Finding[] }): string[] {
  return r.finding.map((x) => `${x.kind} ${x.resource} @${x.location}${x.repaired ? ' repaired' : ''}`);
}
