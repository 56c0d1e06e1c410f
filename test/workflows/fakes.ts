import { afterAll } from 'vitest';
import { VbsError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/log.js';
import { openDatabase, type Db } from '../../src/db/database.js';
import { VmAssignments } from '../../src/db/vm-assignments.js';
import { Metadata } from '../../src/db/metadata.js';
import { DelegatePool, type DelegateClient } from '../../src/front/delegates.js';
import { FrontService } from '../../src/front/service.js';
import { FrontWorkflows } from '../../src/front/workflows.js';
import type { CallContext } from '../../src/soap/server.js';
import type { ClaimOptions, RetryOptions } from '../../src/workflows/engine.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { freshDatabase, freshPostgresUrl, type Engine } from '../setup/engines.js';

/**
 * An in-memory delegate that keeps real state (objects, exports, disks), so a
 * test can check that a rollback left nothing behind, and fails or hangs the
 * operations a test names.
 */
export class FakeDelegate implements DelegateClient {
  readonly calls: string[] = [];
  readonly objects = new Map<string, string>();
  /** What a volume delegate recorded beside each object (src/delegates/volume/object-records.ts), reported by DescribeObjects. */
  readonly records = new Map<string, XmlRecord>();
  readonly exports = new Set<string>();
  readonly disks = new Map<string, string>(); // vmId/device -> volumeId
  /** The mode each disk was attached in (vmId/device -> r or w), for ListDisks. */
  readonly diskModes = new Map<string, string>();
  /** ListExports: whether this back end's exports leave state to list (iSCSI yes, shared files no). */
  exportsTracked = true;
  /** iSCSI initiator state of a fake VMM host: discovered nodes and logged-in sessions, by iqn. */
  readonly nodes = new Set<string>();
  readonly sessions = new Set<string>();
  /** What ExportVolume hands out: a file on a shared file system, or an iSCSI target. */
  exportKind: 'file' | 'iscsi' = 'file';
  /** GrowVolume: each grown volume's size in GiB. */
  readonly sizes = new Map<string, number>();
  /** ResizeDisk: what each VM's disk was told it grew to (vmId/device -> bytes). */
  readonly resized = new Map<string, number>();
  failures = new Map<string, VbsError>();
  hangs = new Set<string>();
  private readonly waiting = new Map<string, (() => void)[]>();

  /** Resolves once a call of `op` has arrived (at once if one already did): a signal, not a sleep. */
  reached(op: string): Promise<void> {
    if (this.calls.includes(op)) return Promise.resolve();
    return new Promise((resolve) => this.waiting.set(op, [...(this.waiting.get(op) ?? []), resolve]));
  }

  /** Records a call (or any event a subclass names) and wakes whoever waits for it. */
  protected note(op: string): void {
    this.calls.push(op);
    for (const resolve of this.waiting.get(op) ?? []) resolve();
    this.waiting.delete(op);
  }

  async call(op: string, i: XmlRecord): Promise<XmlRecord> {
    this.note(op);
    if (this.hangs.has(op)) return new Promise(() => {});
    const f = this.failures.get(op);
    if (f) throw f;
    switch (op) {
      case 'GetCapacity':
        return { backend: 'fake', totalBytes: 1e12, freeBytes: 1e12, provisionedBytes: 0 };
      case 'CreateVolume':
        this.objects.set(String(i.volumeId), 'ready');
        return { accepted: true };
      case 'CreateSnapshot':
        this.objects.set(String(i.snapshotId), 'ready');
        return { accepted: true };
      case 'DescribeObjects':
        if (!(i.id as string[] | undefined)?.length) return { object: [...this.objects].map(([id, state]) => ({ id, state, ...(this.records.has(id) ? { record: this.records.get(id)! } : {}) })) };
        return { object: ((i.id as string[]) ?? []).map((id) => ({ id, state: this.objects.get(id) ?? 'absent' })) };
      case 'DeleteObject':
        return { deleted: this.objects.delete(String(i.id)) };
      case 'GrowVolume': {
        // Idempotent and never smaller, as the real back ends.
        const id = String(i.volumeId);
        if (this.objects.get(id) !== 'ready') throw new VbsError('InvalidVolume.NotFound', `no data for ${id}`);
        this.sizes.set(id, Math.max(this.sizes.get(id) ?? 0, Number(i.sizeGiB)));
        return { sizeBytes: this.sizes.get(id)! * 1024 ** 3 };
      }
      case 'ResizeDisk': {
        const key = `${i.vmId}/${i.device}`;
        if (this.disks.get(key) !== String(i.volumeId)) return { outcome: 'absent' };
        this.resized.set(key, Number(i.sizeBytes));
        return { outcome: 'resized' };
      }
      case 'ExportVolume':
        this.exports.add(`${i.volumeId}@${i.vmmHost}`);
        return {
          export:
            this.exportKind === 'file'
              ? { kind: 'file', path: `/vols/${i.volumeId}.img` }
              : { kind: 'iscsi', portal: '127.0.0.1:3260', iqn: `iqn.2026-11.org.vbs:${i.volumeId}`, lun: 1 },
        };
      case 'UnexportVolume':
        this.exports.delete(`${i.volumeId}@${i.vmmHost}`);
        return { return: true };
      case 'DiscoverTarget':
        this.nodes.add(String((i.source as XmlRecord).iqn));
        return { return: true };
      case 'LoginTarget': {
        const iqn = String((i.source as XmlRecord).iqn);
        if (!this.nodes.has(iqn)) throw new VbsError('OperationFailed', 'no records found');
        this.sessions.add(iqn);
        return { device: `/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-${iqn}-lun-1` };
      }
      case 'LogoutTarget': {
        const iqn = String((i.source as XmlRecord).iqn);
        this.sessions.delete(iqn);
        this.nodes.delete(iqn);
        return { return: true };
      }
      case 'AttachDisk': {
        const key = `${i.vmId}/${i.device}`;
        if (this.disks.has(key)) throw new VbsError('OperationFailed', 'device in use');
        this.disks.set(key, String(i.volumeId));
        this.diskModes.set(key, String(i.mode ?? 'w'));
        return { return: true };
      }
      case 'ListExports':
        return {
          tracked: this.exportsTracked,
          export: this.exportsTracked
            ? [...this.exports].map((e) => {
                const [volumeId, vmmHost] = e.split('@') as [string, string];
                return { volumeId, vmmHost, kind: this.exportKind };
              })
            : [],
        };
      case 'ListDisks': {
        const wanted = (i.vmId as string[] | undefined) ?? [];
        return {
          disk: [...this.disks]
            .map(([key, volumeId]) => {
              const cut = key.indexOf('/'); // devices may be /dev/...
              return { vmId: key.slice(0, cut), device: key.slice(cut + 1), target: `/vols/${volumeId}.img`, mode: this.diskModes.get(key) ?? 'w', volumeId };
            })
            .filter((d) => !wanted.length || wanted.includes(d.vmId)),
        };
      }
      case 'DetachDisk': {
        // Idempotent, as the real delegate: nothing there is done; someone else's disk is refused.
        const key = `${i.vmId}/${i.device}`;
        const held = this.disks.get(key);
        if (held !== undefined && held !== String(i.volumeId)) throw new VbsError('OperationFailed', 'another disk is on that device');
        this.disks.delete(key);
        return { return: true };
      }
      default:
        throw new Error(`fake: ${op}`);
    }
  }
}

/**
 * A delegate whose next call of one operation acts on the host at once but
 * answers only when the test releases it: a call in flight while its runner's
 * claim runs out. Later calls of that operation answer at once.
 */
export class HeldAnswer extends FakeDelegate {
  private held?: { op: string; open: Promise<void>; release: () => void };

  /** Holds the answer of the next `op` call; returns the function that releases it. */
  holdNext(op: string): () => void {
    let release!: () => void;
    const open = new Promise<void>((r) => (release = r));
    this.held = { op, open, release };
    return release;
  }

  override async call(op: string, i: XmlRecord): Promise<XmlRecord> {
    const out = await super.call(op, i);
    const held = this.held;
    if (held?.op === op) {
      this.held = undefined;
      this.note(`${op}:held`);
      await held.open;
    }
    return out;
  }
}

export interface Front {
  db: Db;
  meta: Metadata;
  wf: FrontWorkflows;
  svc: FrontService;
  storage: FakeDelegate;
  vmm: FakeDelegate;
  call(op: string, input: XmlRecord, caller?: string): Promise<XmlRecord>;
}

/** The metadata engine the tests of this file run on now (describe.each(ENGINES) sets it). */
let engine: Engine = 'sqlite';
export function useEngine(e: Engine): void {
  engine = e;
}

/** A fresh database on the current engine: ':memory:' on SQLite, a new schema on PostgreSQL. */
export function freshDb(): string {
  return freshDatabase(engine);
}

/** A database several fronts of a test share (a restart, a second runner): `file` on SQLite, a new schema's URL on PostgreSQL. */
export function sharedDb(file: string): string {
  return engine === 'postgres' ? freshPostgresUrl() : file;
}

/** The PostgreSQL databases this file opened: closed after it, so no connection outlives its test file. */
const opened: Db[] = [];
afterAll(() => {
  for (const db of opened.splice(0)) db.close();
});

/** ':memory:' means a fresh database of the current engine. */
export function makeFront(
  file = ':memory:',
  storage = new FakeDelegate(),
  vmm = new FakeDelegate(),
  retry?: Partial<RetryOptions>,
  claims?: ClaimOptions,
): Front {
  const db = openDatabase(file === ':memory:' ? freshDb() : file);
  if (engine === 'postgres') opened.push(db);
  const meta = new Metadata(db);
  const pool = new DelegatePool(new Map([['local', storage]]), new Map([['localhost', vmm]]));
  const wf = new FrontWorkflows(db, meta, pool, silentLogger, undefined, retry, claims);
  const svc = new FrontService(meta, pool, wf);
  const handlers = svc.handlers();
  // The tests attach as alice: an administrator gave her localhost's VMs (a user attaches only into their own).
  const assignments = new VmAssignments(db);
  for (const vm of ['vm1', 'vm2', 'vm3']) assignments.assign('localhost', vm, 'alice');
  return {
    db,
    meta,
    wf,
    svc,
    storage,
    vmm,
    call: async (op, input, caller = 'alice') => handlers[op]!(input, { caller, requestId: 't', log: silentLogger } as CallContext),
  };
}

/** A delegate that cannot be reached: the request never left this process (nothing changed on the host). */
export function unreachable(): VbsError {
  return new VbsError('ServiceUnavailable', 'VmmDelegate could not be reached.', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
}

/** Creates an available volume through the service (the fake creates instantly). */
export async function availableVolume(f: Front, caller = 'alice'): Promise<string> {
  const r = await f.call('CreateVolume', { size: 1 }, caller);
  const id = String((r.volume as XmlRecord).volumeId);
  f.meta.setVolumeStatus(id, ['creating'], 'available');
  return id;
}
