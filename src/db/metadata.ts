import { newId, type IdKind } from '../core/ids.js';
import type { AttachMode, AttachmentState, SnapshotState, VolumeState } from '../core/states.js';
import { now, type Db } from './database.js';
import { isUniqueViolation } from './engine.js';

export interface VolumeRow {
  volume_id: string;
  owner: string;
  size_gib: number;
  comment: string;
  snapshot_id: string | null;
  status: VolumeState;
  status_message: string | null;
  delegate: string;
  create_time: string;
  create_attempts: number;
  /** Insertion number: the order pages are read in (src/db/listing.ts); set by a trigger. */
  page_seq: number;
  /** The zone it was created in (src/front/zones.ts); null only before the front first started with zones. */
  availability_zone?: string | null;
}

export interface SnapshotRow {
  snapshot_id: string;
  owner: string;
  volume_id: string;
  size_gib: number;
  comment: string;
  status: SnapshotState;
  status_message: string | null;
  progress: number;
  delegate: string;
  create_time: string;
  create_attempts: number;
  /** Insertion number: the order pages are read in (src/db/listing.ts); set by a trigger. */
  page_seq: number;
}

export interface AttachmentRow {
  volume_id: string;
  vmm_host: string;
  vm_id: string;
  device: string;
  mode: AttachMode;
  status: AttachmentState;
  attach_time: string;
  source: string | null;
  /** The instance id the attach named (attach by instance id), else null. */
  instance_id?: string | null;
}

/** Whose records a describe returns: everyone's (an administrator), or one user's (src/front/access.ts). */
export type OwnerScope = { readonly kind: 'all' } | { readonly kind: 'owner'; readonly owner: string };

/**
 * Queries on the metadata. Callers wrap multi-statement changes in writeTx;
 * every status change is a compare-and-swap on the current status, so two
 * racing requests cannot both move the same record.
 */
export class Metadata {
  constructor(readonly db: Db) {}

  /** A fresh id, recorded in the ids table so it is never issued twice. */
  reserveId(kind: IdKind): string {
    for (;;) {
      const id = newId(kind);
      try {
        this.db.prepare('INSERT INTO ids (id, kind, created_at) VALUES (?, ?, ?)').run(id, kind, now());
        return id;
      } catch (err) {
        if (!isUniqueViolation(err)) throw err;
      }
    }
  }

  // --- volumes -------------------------------------------------------------

  insertVolume(v: Omit<VolumeRow, 'create_time' | 'create_attempts' | 'status_message' | 'page_seq' | 'availability_zone'> & { availability_zone?: string | null }): void {
    this.db
      .prepare(
        `INSERT INTO volumes (volume_id, owner, size_gib, comment, snapshot_id, status, delegate, create_time, availability_zone)
         VALUES (@volume_id, @owner, @size_gib, @comment, @snapshot_id, @status, @delegate, @create_time, @availability_zone)`,
      )
      .run({ ...v, availability_zone: v.availability_zone ?? null, create_time: now() });
  }

  volume(id: string): VolumeRow | undefined {
    return this.db.prepare('SELECT * FROM volumes WHERE volume_id = ?').get(id) as VolumeRow | undefined;
  }

  /** The caller's volumes: the given ids (one query however many), or all. */
  volumesOf(owner: string, ids?: readonly string[]): VolumeRow[] {
    if (ids?.length) {
      return this.db
        .prepare('SELECT * FROM volumes WHERE owner = ? AND volume_id IN (SELECT value FROM json_each(?)) ORDER BY create_time, volume_id')
        .all(owner, JSON.stringify(ids)) as VolumeRow[];
    }
    return this.db.prepare('SELECT * FROM volumes WHERE owner = ? ORDER BY create_time, volume_id').all(owner) as VolumeRow[];
  }

  /**
   * Volumes being created and snapshots being copied, with their delegate:
   * what the creation monitor and the long-poll watch. The statuses are
   * written out, not bound, so SQLite uses the partial indexes that hold only
   * those rows (a bound status scans every record).
   */
  creationsInProgress(delegate?: string): { id: string; delegate: string }[] {
    const rows = this.db
      .prepare(
        `SELECT volume_id AS id, delegate FROM volumes WHERE status = 'creating' AND (@delegate IS NULL OR delegate = @delegate)
         UNION ALL SELECT snapshot_id AS id, delegate FROM snapshots WHERE status = 'pending' AND (@delegate IS NULL OR delegate = @delegate)`,
      )
      .all({ delegate: delegate ?? null }) as { id: string; delegate: string }[];
    return rows;
  }

  allVolumes(): VolumeRow[] {
    return this.db.prepare('SELECT * FROM volumes').all() as VolumeRow[];
  }

  setVolumeStatus(id: string, from: readonly VolumeState[], to: VolumeState, message: string | null = null): boolean {
    const r = this.db
      .prepare(`UPDATE volumes SET status = ?, status_message = ? WHERE volume_id = ? AND status IN (SELECT value FROM json_each(?))`)
      .run(to, message, id, JSON.stringify(from));
    return r.changes === 1;
  }

  /** A volume's create attempts so far (how many times its copy was started again). */
  volumeAttempts(id: string): number | undefined {
    return (this.db.prepare('SELECT create_attempts FROM volumes WHERE volume_id = ?').get(id) as { create_attempts: number } | undefined)?.create_attempts;
  }

  /**
   * Counts one more attempt only if the count is still `seen`, the one read
   * when the copy was seen lost: of several fronts that saw it lost, one
   * restarts it. Undefined when another already did (or the volume is gone).
   */
  bumpVolumeAttemptsFrom(id: string, seen: number): number | undefined {
    const r = this.db
      .prepare(`UPDATE volumes SET create_attempts = create_attempts + 1 WHERE volume_id = ? AND create_attempts = ? AND status = 'creating' RETURNING create_attempts`)
      .get(id, seen) as { create_attempts: number } | undefined;
    return r?.create_attempts;
  }

  deleteVolume(id: string): void {
    this.db.prepare('DELETE FROM volume_hosts WHERE volume_id = ?').run(id);
    this.db.prepare('DELETE FROM volumes WHERE volume_id = ?').run(id);
  }

  /** Volumes still being filled from this snapshot: it must not go away under them. */
  volumesCreatingFrom(snapshotId: string): number {
    const r = this.db.prepare(`SELECT count(*) AS n FROM volumes WHERE snapshot_id = ? AND status = 'creating'`).get(snapshotId) as { n: number };
    return r.n;
  }

  // --- snapshots -----------------------------------------------------------

  insertSnapshot(s: Omit<SnapshotRow, 'create_time' | 'create_attempts' | 'status_message' | 'progress' | 'page_seq'>): void {
    this.db
      .prepare(
        `INSERT INTO snapshots (snapshot_id, owner, volume_id, size_gib, comment, status, delegate, create_time)
         VALUES (@snapshot_id, @owner, @volume_id, @size_gib, @comment, @status, @delegate, @create_time)`,
      )
      .run({ ...s, create_time: now() });
  }

  snapshot(id: string): SnapshotRow | undefined {
    return this.db.prepare('SELECT * FROM snapshots WHERE snapshot_id = ?').get(id) as SnapshotRow | undefined;
  }

  allSnapshots(): SnapshotRow[] {
    return this.db.prepare('SELECT * FROM snapshots').all() as SnapshotRow[];
  }

  setSnapshotStatus(id: string, from: readonly SnapshotState[], to: SnapshotState, message: string | null = null, progress?: number): boolean {
    const r = this.db
      .prepare(
        `UPDATE snapshots SET status = ?, status_message = ?, progress = coalesce(?, progress)
         WHERE snapshot_id = ? AND status IN (SELECT value FROM json_each(?))`,
      )
      .run(to, message, progress ?? null, id, JSON.stringify(from));
    return r.changes === 1;
  }

  /** An imported snapshot's size once its image is known (it was admitted by its upload's size). */
  setSnapshotSize(id: string, sizeGib: number): void {
    this.db.prepare(`UPDATE snapshots SET size_gib = ? WHERE snapshot_id = ? AND status = 'pending'`).run(sizeGib, id);
  }

  setSnapshotProgress(id: string, progress: number): void {
    this.db.prepare(`UPDATE snapshots SET progress = ? WHERE snapshot_id = ? AND status = 'pending'`).run(progress, id);
  }

  bumpSnapshotAttempts(id: string): number {
    const r = this.db.prepare('UPDATE snapshots SET create_attempts = create_attempts + 1 WHERE snapshot_id = ? RETURNING create_attempts').get(id) as
      | { create_attempts: number }
      | undefined;
    return r?.create_attempts ?? 0;
  }

  deleteSnapshot(id: string): void {
    this.db.prepare('DELETE FROM snapshots WHERE snapshot_id = ?').run(id);
  }

  /** Snapshots still copying this volume: the volume must not go away under them. */
  pendingSnapshotsOf(volumeId: string): number {
    const r = this.db.prepare(`SELECT count(*) AS n FROM snapshots WHERE volume_id = ? AND status = 'pending'`).get(volumeId) as { n: number };
    return r.n;
  }

  // --- attachments ---------------------------------------------------------

  attachmentsOf(volumeIds: readonly string[]): AttachmentRow[] {
    if (!volumeIds.length) return [];
    return this.db
      .prepare('SELECT * FROM attachments WHERE volume_id IN (SELECT value FROM json_each(?)) ORDER BY attach_time, vmm_host, vm_id')
      .all(JSON.stringify(volumeIds)) as AttachmentRow[];
  }

  allAttachments(): AttachmentRow[] {
    return this.db.prepare('SELECT * FROM attachments').all() as AttachmentRow[];
  }

  attachmentOnDevice(vmmHost: string, vmId: string, device: string): AttachmentRow | undefined {
    return this.db.prepare('SELECT * FROM attachments WHERE vmm_host = ? AND vm_id = ? AND device = ?').get(vmmHost, vmId, device) as
      | AttachmentRow
      | undefined;
  }

  setAttachmentSource(volumeId: string, vmmHost: string, vmId: string, source: object | null): void {
    this.db
      .prepare('UPDATE attachments SET source = ? WHERE volume_id = ? AND vmm_host = ? AND vm_id = ?')
      .run(source ? JSON.stringify(source) : null, volumeId, vmmHost, vmId);
  }

  insertAttachment(a: Omit<AttachmentRow, 'attach_time' | 'source'>): void {
    this.db
      .prepare(
        `INSERT INTO attachments (volume_id, vmm_host, vm_id, device, mode, status, attach_time)
         VALUES (@volume_id, @vmm_host, @vm_id, @device, @mode, @status, @attach_time)`,
      )
      .run({ ...a, attach_time: now() });
  }

  /** Records the instance id an attachment was asked for, beside the host and VM it resolved to. */
  setAttachmentInstance(volumeId: string, vmmHost: string, vmId: string, instanceId: string): void {
    this.db.prepare('UPDATE attachments SET instance_id = ? WHERE volume_id = ? AND vmm_host = ? AND vm_id = ?').run(instanceId, volumeId, vmmHost, vmId);
  }

  setAttachmentStatus(volumeId: string, vmmHost: string, vmId: string, from: AttachmentState, to: AttachmentState): boolean {
    const r = this.db
      .prepare('UPDATE attachments SET status = ? WHERE volume_id = ? AND vmm_host = ? AND vm_id = ? AND status = ?')
      .run(to, volumeId, vmmHost, vmId, from);
    return r.changes === 1;
  }

  /** Deletes one attachment only while it is in `status`; true when it was. */
  deleteAttachmentIn(volumeId: string, vmmHost: string, vmId: string, status: AttachmentState): boolean {
    return this.db.prepare('DELETE FROM attachments WHERE volume_id = ? AND vmm_host = ? AND vm_id = ? AND status = ?').run(volumeId, vmmHost, vmId, status).changes === 1;
  }

  deleteAttachment(volumeId: string, vmmHost: string, vmId: string): void {
    this.db.prepare('DELETE FROM attachments WHERE volume_id = ? AND vmm_host = ? AND vm_id = ?').run(volumeId, vmmHost, vmId);
  }

  /** Records that an attachment's disk is off its VM: it is leaving, and never needs its host's session or export again. */
  markDiskGone(volumeId: string, vmmHost: string, vmId: string): void {
    this.db.prepare('UPDATE attachments SET disk_gone = 1 WHERE volume_id = ? AND vmm_host = ? AND vm_id = ?').run(volumeId, vmmHost, vmId);
  }

  /**
   * Attachments on one VMM host of a volume, other than one VM's, that may
   * still use its export and session there (a leaving one whose disk is off
   * its VM does not).
   */
  othersOnHost(volumeId: string, vmmHost: string, vmId: string): number {
    const r = this.db.prepare('SELECT count(*) AS n FROM attachments WHERE volume_id = ? AND vmm_host = ? AND vm_id <> ? AND disk_gone = 0').get(volumeId, vmmHost, vmId) as {
      n: number;
    };
    return r.n;
  }

  attachmentCount(volumeId: string, vmmHost?: string): number {
    const row = vmmHost
      ? this.db.prepare('SELECT count(*) AS n FROM attachments WHERE volume_id = ? AND vmm_host = ?').get(volumeId, vmmHost)
      : this.db.prepare('SELECT count(*) AS n FROM attachments WHERE volume_id = ?').get(volumeId);
    return (row as { n: number }).n;
  }

  /** Remembers that a volume was attached on a host: its delete asks that host first. */
  recordVolumeHost(volumeId: string, vmmHost: string): void {
    this.db.prepare('INSERT OR IGNORE INTO volume_hosts (volume_id, vmm_host) VALUES (?, ?)').run(volumeId, vmmHost);
  }

  /** Remembers what the volume's export on a host is (see the migration that adds export_source). */
  recordHostExport(volumeId: string, vmmHost: string, source: object): void {
    this.recordVolumeHost(volumeId, vmmHost);
    this.db.prepare('UPDATE volume_hosts SET export_source = ? WHERE volume_id = ? AND vmm_host = ?').run(JSON.stringify(source), volumeId, vmmHost);
  }

  /** The volume's export on a host as last recorded, while it may still be there. */
  hostExport(volumeId: string, vmmHost: string): Record<string, unknown> | undefined {
    const row = this.db.prepare('SELECT export_source FROM volume_hosts WHERE volume_id = ? AND vmm_host = ?').get(volumeId, vmmHost) as { export_source: string | null } | undefined;
    return row?.export_source ? (JSON.parse(row.export_source) as Record<string, unknown>) : undefined;
  }

  /** The export on a host was withdrawn. */
  forgetHostExport(volumeId: string, vmmHost: string): void {
    this.db.prepare('UPDATE volume_hosts SET export_source = NULL WHERE volume_id = ? AND vmm_host = ?').run(volumeId, vmmHost);
  }

  /** A login to the volume's export is about to be tried on the host: it may have a session from now on. */
  markSessionMayExist(volumeId: string, vmmHost: string): void {
    this.recordVolumeHost(volumeId, vmmHost);
    this.db.prepare('UPDATE volume_hosts SET session_may_exist = 1 WHERE volume_id = ? AND vmm_host = ?').run(volumeId, vmmHost);
  }

  /** Whether a login was tried on the host since its last logout. */
  sessionMayExist(volumeId: string, vmmHost: string): boolean {
    const row = this.db.prepare('SELECT session_may_exist FROM volume_hosts WHERE volume_id = ? AND vmm_host = ?').get(volumeId, vmmHost) as { session_may_exist: number } | undefined;
    return row?.session_may_exist === 1;
  }

  /** The host was logged out of the volume's export. */
  forgetSession(volumeId: string, vmmHost: string): void {
    this.db.prepare('UPDATE volume_hosts SET session_may_exist = 0 WHERE volume_id = ? AND vmm_host = ?').run(volumeId, vmmHost);
  }

  /** Every VMM host the volume was ever attached on. */
  volumeHosts(volumeId: string): string[] {
    return (this.db.prepare('SELECT vmm_host FROM volume_hosts WHERE volume_id = ? ORDER BY vmm_host').all(volumeId) as { vmm_host: string }[]).map((r) => r.vmm_host);
  }

  // --- errors set by the workflow engine ----------------------------------

  /** Puts a volume or snapshot in error with a message; returns the status it had (undefined: no such record). */
  markError(id: string, message: string): string | undefined {
    const [table, key] = id.startsWith('snap-') ? ['snapshots', 'snapshot_id'] : ['volumes', 'volume_id'];
    const row = this.db.prepare(`SELECT status FROM ${table} WHERE ${key} = ?`).get(id) as { status: string } | undefined;
    if (!row) return undefined;
    this.db.prepare(`UPDATE ${table} SET status = 'error', status_message = ? WHERE ${key} = ?`).run(message, id);
    return row.status;
  }

  /** Undoes markError when the work it reported is resumed: only while the record is still in that error. */
  clearError(id: string, status: string): void {
    const [table, key] = id.startsWith('snap-') ? ['snapshots', 'snapshot_id'] : ['volumes', 'volume_id'];
    this.db.prepare(`UPDATE ${table} SET status = ?, status_message = NULL WHERE ${key} = ? AND status = 'error'`).run(status, id);
  }

  // --- client tokens -------------------------------------------------------

  clientToken(owner: string, token: string): { operation: string; params: string; resource_id: string } | undefined {
    return this.db.prepare('SELECT operation, params, resource_id FROM client_tokens WHERE owner = ? AND token = ?').get(owner, token) as
      | { operation: string; params: string; resource_id: string }
      | undefined;
  }

  deleteClientToken(owner: string, token: string): void {
    this.db.prepare('DELETE FROM client_tokens WHERE owner = ? AND token = ?').run(owner, token);
  }

  insertClientToken(owner: string, token: string, operation: string, params: string, resourceId: string): void {
    this.db
      .prepare('INSERT INTO client_tokens (owner, token, operation, params, resource_id, created_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(owner, token, operation, params, resourceId, now());
  }
}
