import { VbsError } from '../../core/errors.js';
import { busyResources, lastDeleteData, lastStep, pendingWork } from '../../db/journal.js';
import type { AttachmentRow, Metadata, SnapshotRow, VolumeRow } from '../../db/metadata.js';
import type { Record as XmlRecord } from '../../soap/xml.js';
import type { DelegateClient } from '../delegates.js';

/** The metadata at one instant (one read transaction: WAL gives it a consistent snapshot). */
export interface MetaSnapshot {
  readonly volumes: ReadonlyMap<string, VolumeRow>;
  readonly snapshots: ReadonlyMap<string, SnapshotRow>;
  readonly attachments: readonly AttachmentRow[];
  /** Volumes and snapshots some workflow in the journal is still working on. */
  readonly busy: ReadonlySet<string>;
  readonly leftovers: readonly LeftoverRow[];
  /** For rows stuck in deleting: the status the last delete started from (its journal data). */
  readonly statusBeforeDelete: ReadonlyMap<string, string>;
  /** Is this id one the metadata ever issued (the ids table keeps those of deleted records too)? */
  readonly issued: (id: string) => boolean;
}

/** Work nobody is running now: an undo to retry, or a workflow that could not finish a step. */
export interface LeftoverRow {
  /** `leftover:<id>` or `workflow:<id>`: stable across observations. */
  key: string;
  kind: string;
  step: string;
  attempts: number;
  resourceId: string;
  data: Record<string, unknown>;
  error: string;
  /** Given up on: the resource is in error until a repair resumes it. */
  parked: boolean;
}

export function readMeta(meta: Metadata): MetaSnapshot {
  const db = meta.db;
  return db.transaction(() => {
    const volumes = new Map(meta.allVolumes().map((v) => [v.volume_id, v]));
    const snapshots = new Map(meta.allSnapshots().map((s) => [s.snapshot_id, s]));
    const busy = busyResources(db);
    const pending = pendingWork(db);
    const leftovers: LeftoverRow[] = [
      ...pending.workflows.map((w) => ({
        key: `workflow:${w.id}`,
        kind: w.kind,
        step: lastStep(db, w.id) ?? 'its first step',
        attempts: w.attempts,
        resourceId: w.resource_id,
        data: parseData(w.data),
        error: w.last_error ?? 'interrupted',
        parked: w.parked_at !== null,
      })),
      ...pending.leftovers.map((l) => ({
        key: `leftover:${l.id}`,
        kind: l.kind,
        step: l.step,
        attempts: l.attempts,
        resourceId: l.resource_id,
        data: parseData(l.data),
        error: l.error,
        parked: l.parked_at !== null,
      })),
    ];
    const statusBeforeDelete = new Map<string, string>();
    const deleting = [...volumes.values()].filter((v) => v.status === 'deleting').map((v) => v.volume_id);
    deleting.push(...[...snapshots.values()].filter((s) => s.status === 'deleting').map((s) => s.snapshot_id));
    for (const id of deleting) {
      const data = lastDeleteData(db, id);
      const previous = data ? parseData(data).previous : undefined;
      if (typeof previous === 'string') statusBeforeDelete.set(id, previous);
    }
    const issuedIds = new Set((db.prepare('SELECT id FROM ids').all() as { id: string }[]).map((r) => r.id));
    return { volumes, snapshots, attachments: meta.allAttachments(), busy, leftovers, statusBeforeDelete, issued: (id: string) => issuedIds.has(id) };
  })();
}

function parseData(text: string): Record<string, unknown> {
  try {
    const v = JSON.parse(text) as unknown;
    return v && typeof v === 'object' ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** What a volume delegate reported; a part it did not answer is undefined and its reason is in `errors`. */
export interface VolumeDelegateReport {
  readonly name: string;
  readonly objects?: ReadonlyMap<string, StoredObject>;
  readonly exports?: { readonly tracked: boolean; readonly entries: readonly ExportEntry[] };
  readonly errors: readonly string[];
}

export interface VmmHostReport {
  readonly name: string;
  readonly disks?: readonly VmDisk[];
  /** The VMs the host lists (undefined: it could not say): one not listed holds nothing. */
  readonly vms?: readonly string[];
  readonly errors: readonly string[];
}

export interface Reports {
  readonly volumeDelegates: ReadonlyMap<string, VolumeDelegateReport>;
  readonly vmmHosts: ReadonlyMap<string, VmmHostReport>;
}

export interface StoredObject {
  id: string;
  state: string;
  message?: string;
  sizeBytes?: number;
  /** What the delegate recorded beside the data (src/delegates/volume/object-records.ts). */
  record?: { owner: string; sizeGiB?: number; snapshotId?: string; volumeId?: string; zone?: string; createdAt: string };
}

export interface ExportEntry {
  volumeId: string;
  vmmHost?: string;
  kind: string;
  iqn?: string;
  tid?: number;
  lun?: number;
  watchers?: number;
}

export interface VmDisk {
  vmId: string;
  device: string;
  target: string;
  mode: string;
  volumeId?: string;
}

export interface GatherTargets {
  readonly volumeDelegates: readonly { name: string; client: DelegateClient }[];
  readonly vmmHosts: readonly { name: string; client: DelegateClient }[];
  /** A delegate that has not answered by then is reported unreachable. */
  readonly callTimeoutMs: number;
}

/** Asks every delegate, all at once, what it holds. */
export async function gather(t: GatherTargets): Promise<Reports> {
  const [volumeDelegates, vmmHosts] = await Promise.all([
    Promise.all(t.volumeDelegates.map((d) => askVolumeDelegate(d.name, d.client, t.callTimeoutMs))),
    Promise.all(t.vmmHosts.map((h) => askVmmHost(h.name, h.client, t.callTimeoutMs))),
  ]);
  return { volumeDelegates: new Map(volumeDelegates.map((r) => [r.name, r])), vmmHosts: new Map(vmmHosts.map((r) => [r.name, r])) };
}

async function askVolumeDelegate(name: string, client: DelegateClient, timeoutMs: number): Promise<VolumeDelegateReport> {
  const errors: string[] = [];
  const [objects, exports] = await Promise.all([
    ask(client, 'DescribeObjects', {}, timeoutMs, errors).then((r) =>
      r ? new Map(list<StoredObject>(r.object).filter((o) => o.state !== 'absent').map((o) => [String(o.id), o])) : undefined,
    ),
    ask(client, 'ListExports', {}, timeoutMs, errors).then((r) => (r ? { tracked: r.tracked === true, entries: list<ExportEntry>(r.export) } : undefined)),
  ]);
  return { name, objects, exports, errors };
}

async function askVmmHost(name: string, client: DelegateClient, timeoutMs: number): Promise<VmmHostReport> {
  const errors: string[] = [];
  // The VM list only adds a fix (detach an attachment whose VM is gone): a host that cannot give it is no less reachable.
  const [r, v] = await Promise.all([ask(client, 'ListDisks', {}, timeoutMs, errors), ask(client, 'ListVms', {}, timeoutMs, [])]);
  return { name, disks: r ? list<VmDisk>(r.disk) : undefined, vms: v ? list<string>(v.vmId) : undefined, errors };
}

/** One call, bounded in time; a failure is noted in `errors` with a message safe to show. */
async function ask(client: DelegateClient, op: string, input: XmlRecord, timeoutMs: number, errors: string[]): Promise<XmlRecord | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new VbsError('ServiceUnavailable', `it did not answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([client.call(op, input), timeout]);
  } catch (err) {
    // Delegates' faults carry safe messages; anything else stays in our log.
    errors.push(`${op}: ${err instanceof VbsError ? `${err.code}: ${err.message}` : 'the call failed'}`);
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

function list<T>(value: unknown): T[] {
  if (value === undefined || value === null) return [];
  return (Array.isArray(value) ? value : [value]) as T[];
}
