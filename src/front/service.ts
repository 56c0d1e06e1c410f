import { VbsError } from '../core/errors.js';
import { writeTx } from '../db/database.js';
import { workflowRunningOn } from '../db/journal.js';
import { attachConflict } from '../core/states.js';
import * as v from '../core/validate.js';
import type { Logger } from '../core/log.js';
import type { Metadata } from '../db/metadata.js';
import { QuotaStore, type Limits } from '../db/quotas.js';
import { SnapshotShares } from '../db/shares.js';
import type { CallContext, Handlers } from '../soap/server.js';
import type { Record as XmlRecord } from '../soap/xml.js';
import type { AttachmentData } from '../workflows/attach.js';
import type { WorkflowKind } from '../workflows/engine.js';
import type { DelegatePool } from './delegates.js';
import { Attachability } from './attachable.js';
import type { FrontWorkflows } from './workflows.js';
import { InstanceLocator } from './instances.js';
import { ConsistencyChecker } from './check/checker.js';
import { MetadataAdmin } from './metadata-admin.js';
import { safeOnReturn } from './check/safe.js';
import { describeSnapshots, describeVolumes } from './describe.js';
import { attachmentRecord, snapshotRecord, volumeRecord } from './records.js';
import { Access, administrators } from './access.js';
import type { AuditTrail } from './audit.js';
import { DEFAULT_LIMITS, QuotaPolicy } from './quotas.js';
import { VmAdmin } from './vm-admin.js';
import { Fencing } from './fencing.js';
import { DEFAULT_REGION, Zones } from './zones.js';
import { TagStore } from '../db/tags.js';
import { ResourceTags } from './tags.js';
import { VolumeModifier, type ModificationsRequest } from './modify-volume.js';
import { FrontImages, type ImageLimits } from './images.js';
import type { StreamTarget } from '../soap/stream-client.js';
import type { StreamRoute } from '../soap/stream-route.js';

/** Who administers the front and what limits users have (the front configuration's `admins`, `quotas`). */
export interface AdminOptions {
  /** Certificate names that are administrators, beside certificates with the administrator purpose. */
  readonly admins?: readonly string[];
  /** Each user's limits unless SetQuota gave them others. */
  readonly quotas?: Partial<Limits>;
  /** Told which owner an administrator acts for (the audit log). */
  readonly audit?: AuditTrail;
  /** Wait before a suspected difference is looked at again (longer than the creation monitor's poll). */
  readonly checkSettleMs?: number;
  /** A delegate that has not answered a check's question by then is unreachable. */
  readonly checkCallTimeoutMs?: number;
  /** How a check waits between its two observations (tests replace it). */
  readonly checkSleep?: (ms: number) => Promise<void>;
  /** The availability zones (src/front/zones.ts); default: one zone of every volume delegate. */
  readonly zones?: Zones;
}

const DEFAULT_CHECK_SETTLE_MS = 1_500;
/** How long a repeated client token waits for its first create running on another front, and how often it looks. */
const OTHER_FRONT_CREATE_WAIT_MS = 20_000;
const OTHER_FRONT_CREATE_POLL_MS = 100;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const DEFAULT_CHECK_CALL_TIMEOUT_MS = 10_000;

/** Thrown inside a transaction when a client token names a create already made. */
class AlreadyCreated {
  constructor(readonly resourceId: string) {}
}

/**
 * The VBS operations. Each validates its input, checks that the caller may
 * act on what it names (src/front/access.ts: someone else's volume is
 * reported as not found, so ids leak nothing; administrators act on anyone's),
 * checks quotas in the transaction that creates a record, and hands
 * multi-step work to a journaled workflow.
 */
export class FrontService {
  /** Creates still running, by the id they made: a repeat of their client token shares their outcome. */
  private readonly creating = new Map<string, Promise<unknown>>();

  private readonly access: Access;
  private readonly shares: SnapshotShares;
  private readonly quotas: QuotaPolicy;
  private readonly checker: ConsistencyChecker;
  private readonly metadataAdmin: MetadataAdmin;
  private readonly vmAdmin: VmAdmin;
  private readonly fencing: Fencing;
  private readonly zones: Zones;
  private readonly tags: ResourceTags;
  private readonly attachability: Attachability;
  /** ModifyVolume and DescribeVolumesModifications; the EC2 Query API's handlers call it too. */
  readonly modifier: VolumeModifier;

  constructor(
    private readonly meta: Metadata,
    private readonly delegates: DelegatePool,
    private readonly wf: FrontWorkflows,
    admin: AdminOptions = {},
    /** Attach by instance id (src/front/instances.ts); none configured: every instance id is unknown. */
    private readonly instances: InstanceLocator = new InstanceLocator([], 0),
  ) {
    this.shares = new SnapshotShares(meta.db);
    this.quotas = new QuotaPolicy(new QuotaStore(meta.db), { ...DEFAULT_LIMITS, ...admin.quotas });
    const audit = admin.audit;
    this.access = new Access(meta, this.shares, administrators(admin.admins ?? ['admin']), audit ? (ctx, owner) => audit.actingFor(ctx, owner) : undefined);
    this.attachability = new Attachability(delegates);
    this.vmAdmin = new VmAdmin(meta.db, (host) => void delegates.vmmDelegate(host));
    this.fencing = new Fencing(meta, wf, this.access);
    this.zones = admin.zones ?? new Zones(DEFAULT_REGION, delegates.volumeDelegateNames(), undefined);
    this.tags = new ResourceTags(meta, new TagStore(meta.db), this.access, this.zones);
    this.modifier = new VolumeModifier(meta, wf, this.access, this.quotas);
    this.checker = new ConsistencyChecker(meta, delegates, wf.engine, {
      settleMs: admin.checkSettleMs ?? DEFAULT_CHECK_SETTLE_MS,
      callTimeoutMs: admin.checkCallTimeoutMs ?? DEFAULT_CHECK_CALL_TIMEOUT_MS,
      sleep: admin.checkSleep,
      hostLocks: wf.hostLocks,
      zoneOf: (delegate) => this.zones.zoneOf(delegate),
      // A repair that forgets an attachment (its VM is gone) runs the detach as an administrator would.
      detach: async (volumeId, vmmHost, vmId, log) => {
        await this.detachVolume({ volumeId, vmmHost, vmId }, { caller: 'vbs-admin-check', admin: true, requestId: 'admin-check', log });
      },
    });
    this.metadataAdmin = new MetadataAdmin(meta, this.checker);
  }

  handlers(): Handlers {
    return {
      CreateVolume: (i, c) => this.createVolume(i, c),
      DeleteVolume: (i, c) => this.deleteVolume(i, c),
      DescribeVolumes: (i, c) => this.describeVolumes(i, c),
      CreateSnapshot: (i, c) => this.createSnapshot(i, c),
      DeleteSnapshot: (i, c) => this.deleteSnapshot(i, c),
      DescribeSnapshots: (i, c) => this.describeSnapshots(i, c),
      AttachVolume: (i, c) => this.attachVolume(i, c),
      DetachVolume: (i, c) => this.detachVolume(i, c),
      ShareSnapshot: (i, c) => this.shareSnapshot(i, c, true),
      UnshareSnapshot: (i, c) => this.shareSnapshot(i, c, false),
      DescribeSnapshotSharing: (i, c) => this.describeSharing(i, c),
      SetQuota: (i, c) => this.setQuota(i, c),
      DescribeQuota: (i, c) => this.describeQuota(i, c),
      CheckConsistency: (i, c) => this.checkConsistency(i, c),
      BackupMetadata: (_i, c) => (this.adminsOnly(c, 'back up the metadata'), this.metadataAdmin.backup(c.log)),
      RebuildMetadata: (_i, c) => (this.adminsOnly(c, 'rebuild the metadata'), this.metadataAdmin.rebuild(c.log)),
      AssignVm: (i, c) => (this.adminsOnly(c, 'assign VMs'), this.vmAdmin.assign(i)),
      UnassignVm: (i, c) => (this.adminsOnly(c, 'assign VMs'), this.vmAdmin.unassign(i)),
      DescribeVmAssignments: (i, c) => (this.adminsOnly(c, 'see VM assignments'), this.vmAdmin.describe(i)),
      ModifyVolume: async (i, c) => ({ modification: await this.modifier.modify(c, i.volumeId, i.size) }),
      DescribeVolumesModifications: (i, c) => this.modifier.describe(c, i as ModificationsRequest),
      RetireHost: (i, c) => this.fencing.retireHost(v.hostName(i.host, 'host'), c, c.log),
      CreateTags: (i, c) => this.tags.create(i, c),
      DeleteTags: (i, c) => this.tags.remove(i, c),
      DescribeTags: (i, c) => this.tags.describe(i, c),
      DescribeAvailabilityZones: (i) => this.tags.describeZones(i),
    };
  }

  /** ImportImage and ExportImage, streamed beside the SOAP operations (src/front/images.ts). */
  imageRoutes(channels: ReadonlyMap<string, StreamTarget>, limits: ImageLimits): StreamRoute[] {
    return new FrontImages(this.meta, this.wf, this.access, this.quotas, this.zones, channels, limits).routes();
  }

  // --- administration ---------------------------------------------------------

  /** Reconciliation (src/front/check): administrators only, as their certificate names say. */
  private async checkConsistency(input: XmlRecord, ctx: CallContext): Promise<XmlRecord> {
    if (!this.access.isAdmin(ctx)) throw new VbsError('UnauthorizedOperation', 'Only VBS administrators may check consistency.');
    const result = await this.checker.check(input.repair === true, ctx.log);
    return { clean: result.clean, finding: result.finding as unknown as XmlRecord[] };
  }

  /**
   * The reconciliation a delegate gets when it comes back after an outage:
   * safe repairs only, findings logged for the operator.
   */
  async reconcile(log: Logger): Promise<void> {
    const result = await this.checker.check(safeOnReturn, log);
    for (const f of result.finding) (f.repaired ? log.info : log.warn).call(log, 'reconciliation', { ...f });
    log.info('reconciled after a delegate came back', { clean: result.clean, findings: result.finding.length });
  }

  /** A user's limits: administrators only, like every quota operation. */
  private setQuota(input: XmlRecord, ctx: CallContext): XmlRecord {
    this.adminsOnly(ctx, 'set quotas');
    const user = v.userName(input.user);
    const limits = {
      volumes: v.limit(input.volumes, 'volumes'),
      gib: v.limit(input.gib, 'gib'),
      snapshots: v.limit(input.snapshots, 'snapshots'),
      snapshotGib: v.limit(input.snapshotGib, 'snapshotGib'),
    };
    this.quotas.set(user, limits);
    return { quota: this.quotaRecord(user) };
  }

  private describeQuota(input: XmlRecord, ctx: CallContext): XmlRecord {
    this.adminsOnly(ctx, 'see quotas');
    return { quota: this.quotaRecord(v.userName(input.user)) };
  }

  private quotaRecord(user: string): XmlRecord {
    const { limits, usage } = this.quotas.describe(user);
    return { user, volumeLimit: limits.volumes, gibLimit: limits.gib, snapshotLimit: limits.snapshots, snapshotGibLimit: limits.snapshotGib, ...usage };
  }

  private adminsOnly(ctx: CallContext, what: string): void {
    if (!this.access.isAdmin(ctx)) throw new VbsError('UnauthorizedOperation', `Only VBS administrators may ${what}.`);
  }

  private describeVolume(id: string): XmlRecord {
    const vol = this.meta.volume(id);
    if (!vol) throw new VbsError('InvalidVolume.NotFound', `The volume '${id}' does not exist.`);
    return volumeRecord(vol, this.meta.attachmentsOf([id]), this.tags.of([id]));
  }

  /** Idempotent creates: the same token with the same parameters returns the first result. */
  private checkToken(owner: string, token: string | undefined, operation: string, params: string): void {
    if (!token) return;
    const seen = this.meta.clientToken(owner, token);
    if (!seen) return;
    if (seen.operation !== operation || seen.params !== params) {
      throw new VbsError('IdempotentParameterMismatch', `The client token '${token}' was already used with other parameters.`);
    }
    throw new AlreadyCreated(seen.resource_id);
  }

  /**
   * Runs a create workflow and remembers it under the id it made until it
   * ends, so a request repeating its client token meanwhile waits for the
   * same outcome instead of returning a record the rollback is about to remove.
   */
  private runCreate<D extends object>(kind: WorkflowKind<D>, idOf: (d: D) => string, prepare: () => D): Promise<D> {
    const made: { id?: string } = {};
    const run = this.wf.run(kind, () => {
      const d = prepare();
      made.id = idOf(d);
      return d;
    });
    // prepare ran synchronously, in the transaction that recorded the token: nobody saw the token before this.
    const id = made.id;
    if (id !== undefined) {
      this.creating.set(id, run);
      const forget = () => this.creating.delete(id);
      run.then(forget, forget);
    }
    return run;
  }

  /**
   * Waits for the create that first used a client token; its fault, if it
   * failed, is this request's too. A create another front runs (several
   * fronts share the database; the CLI sends a retry to the next front) is
   * waited for in the database, bounded: if it was rolled back, its token went
   * with it, and the retryable answer lets the client's retry create anew.
   */
  private async sameOutcomeAs(id: string): Promise<void> {
    const here = this.creating.get(id);
    if (here) {
      await here;
      return;
    }
    const until = Date.now() + OTHER_FRONT_CREATE_WAIT_MS;
    while (workflowRunningOn(this.meta.db, id) && Date.now() < until) await sleep(OTHER_FRONT_CREATE_POLL_MS);
    const exists = id.startsWith('vol-') ? this.meta.volume(id) : this.meta.snapshot(id);
    if (!exists) throw new VbsError('ServiceUnavailable', 'The create that first used this client token did not succeed. Retry it (the same token is fine) to try again.');
  }

  // --- volumes ---------------------------------------------------------------

  private async createVolume(input: XmlRecord, ctx: CallContext): Promise<XmlRecord> {
    const size = v.sizeGiB(input.size);
    const comment = v.comment(input.comment);
    const snapshotId = input.snapshotId === undefined ? null : v.snapshotId(input.snapshotId);
    const token = v.clientToken(input.clientToken);
    const askedZone = input.availabilityZone === undefined ? undefined : this.zones.known(v.zoneName(input.availabilityZone));
    const tags = this.tags.parse(input.tag);
    const params = JSON.stringify({ size, comment, snapshotId, ...(askedZone ? { zone: askedZone } : {}), ...(tags.length ? { tags } : {}) });
    // From a snapshot: on the snapshot's delegate (its data is there), so in that delegate's zone.
    const placed = snapshotId ? this.fromSnapshot(this.access.snapshotToUse(snapshotId, ctx).delegate, askedZone) 
      : // Only a zone seen down costs a look (and a tick): otherwise the create starts in this one.
        this.zones.seenDown(askedZone)
        ? await this.zones.pickChecked(askedZone)
        : this.zones.pick(askedZone);
    const delegate = placed.delegate;
    try {
      const d = await this.runCreate(this.wf.createVolume, (x) => x.volumeId, () => {
        this.checkToken(ctx.caller, token, 'CreateVolume', params);
        if (snapshotId) {
          const snap = this.access.snapshotToUse(snapshotId, ctx);
          if (snap.status !== 'completed') throw new VbsError('IncorrectState', `The snapshot '${snapshotId}' is ${snap.status}, not completed.`);
          if (size < snap.size_gib) {
            throw new VbsError('InvalidParameterValue', `Value for parameter size is invalid: the snapshot holds ${snap.size_gib} GiB; the volume must be at least that.`);
          }
        }
        this.quotas.admitVolume(ctx.caller, size); // in this transaction: concurrent creates cannot overshoot
        const volumeId = this.meta.reserveId('vol');
        this.meta.insertVolume({ volume_id: volumeId, owner: ctx.caller, size_gib: size, comment, snapshot_id: snapshotId, status: 'creating', delegate, availability_zone: placed.zone });
        this.tags.putNew(volumeId, tags);
        if (token) this.meta.insertClientToken(ctx.caller, token, 'CreateVolume', params, volumeId);
        return { volumeId, sizeGiB: size, snapshotId, delegate, owner: ctx.caller, clientToken: token ?? null };
      });
      return { volume: this.describeVolume(d.volumeId) };
    } catch (err) {
      if (!(err instanceof AlreadyCreated)) throw err;
      await this.sameOutcomeAs(err.resourceId);
      return { volume: this.describeVolume(err.resourceId) };
    }
  }

  /** A volume from a snapshot is made where the snapshot is; a zone asked for must be that one. */
  private fromSnapshot(delegate: string, askedZone: string | undefined): { delegate: string; zone: string } {
    const zone = this.zones.zoneOf(delegate);
    if (askedZone !== undefined && askedZone !== zone) {
      throw new VbsError('InvalidParameterValue', `Value for parameter availabilityZone is invalid: the snapshot is in ${zone}; volumes from it are created there.`);
    }
    return { delegate, zone };
  }

  private async deleteVolume(input: XmlRecord, ctx: CallContext): Promise<XmlRecord> {
    const id = v.volumeId(input.volumeId);
    await this.wf.run(this.wf.deleteVolume, () => {
      const vol = this.access.volume(id, ctx);
      if (this.meta.attachmentsOf([id]).length) throw new VbsError('VolumeInUse', `The volume '${id}' is attached; detach it first.`);
      if (vol.status !== 'available' && vol.status !== 'error') {
        throw new VbsError('IncorrectState', `The volume '${id}' is ${vol.status}; only available or error volumes can be deleted.`);
      }
      if (this.meta.pendingSnapshotsOf(id)) throw new VbsError('IncorrectState', `A snapshot of '${id}' is still being taken.`);
      this.modifier.refuseWhileModifying(id, 'delete it');
      this.meta.setVolumeStatus(id, [vol.status], 'deleting');
      return { id, delegate: vol.delegate, previous: vol.status };
    }, id);
    return { return: true };
  }

  /** Ids, or pages and filters (src/front/describe.ts), over the caller's own volumes. */
  private describeVolumes(input: XmlRecord, ctx: CallContext): XmlRecord {
    return describeVolumes(this.meta, this.access.describeScope(ctx), input, (ids) => this.tags.of(ids));
  }

  // --- snapshots -------------------------------------------------------------

  private async createSnapshot(input: XmlRecord, ctx: CallContext): Promise<XmlRecord> {
    const volumeId = v.volumeId(input.volumeId);
    const comment = v.comment(input.comment);
    const token = v.clientToken(input.clientToken);
    const tags = this.tags.parse(input.tag);
    const params = JSON.stringify({ volumeId, comment, ...(tags.length ? { tags } : {}) });
    try {
      const d = await this.runCreate(this.wf.createSnapshot, (x) => x.snapshotId, () => {
        this.checkToken(ctx.caller, token, 'CreateSnapshot', params);
        const vol = this.access.volume(volumeId, ctx);
        if (vol.status !== 'available' && vol.status !== 'in-use') {
          throw new VbsError('IncorrectState', `The volume '${volumeId}' is ${vol.status}; snapshots are taken of available or in-use volumes.`);
        }
        this.modifier.refuseWhileModifying(volumeId, 'snapshot it');
        this.quotas.admitSnapshot(ctx.caller, vol.size_gib); // the snapshot is the caller's, an administrator's too
        const snapshotId = this.meta.reserveId('snap');
        this.meta.insertSnapshot({ snapshot_id: snapshotId, owner: ctx.caller, volume_id: volumeId, size_gib: vol.size_gib, comment, status: 'pending', delegate: vol.delegate });
        this.tags.putNew(snapshotId, tags);
        if (token) this.meta.insertClientToken(ctx.caller, token, 'CreateSnapshot', params, snapshotId);
        return { snapshotId, volumeId, delegate: vol.delegate, owner: ctx.caller, clientToken: token ?? null };
      });
      return { snapshot: snapshotRecord(this.meta.snapshot(d.snapshotId)!, this.tags.of([d.snapshotId])) };
    } catch (err) {
      if (err instanceof AlreadyCreated) {
        await this.sameOutcomeAs(err.resourceId);
        const snap = this.meta.snapshot(err.resourceId);
        if (!snap) throw new VbsError('InvalidSnapshot.NotFound', `The snapshot '${err.resourceId}' does not exist.`);
        return { snapshot: snapshotRecord(snap, this.tags.of([snap.snapshot_id])) };
      }
      throw err;
    }
  }

  private async deleteSnapshot(input: XmlRecord, ctx: CallContext): Promise<XmlRecord> {
    const id = v.snapshotId(input.snapshotId);
    await this.wf.run(this.wf.deleteSnapshot, () => {
      const snap = this.access.snapshotToManage(id, ctx);
      if (snap.status !== 'completed' && snap.status !== 'error') {
        throw new VbsError('IncorrectState', `The snapshot '${id}' is ${snap.status}; only completed or error snapshots can be deleted.`);
      }
      if (this.meta.volumesCreatingFrom(id)) throw new VbsError('IncorrectState', `A volume is still being created from '${id}'.`);
      this.meta.setSnapshotStatus(id, [snap.status], 'deleting');
      return { id, delegate: snap.delegate, previous: snap.status };
    }, id);
    return { return: true };
  }

  private describeSnapshots(input: XmlRecord, ctx: CallContext): XmlRecord {
    return describeSnapshots(this.meta, this.access.describeScope(ctx), input, (ids) => this.tags.of(ids));
  }

  /**
   * Share or stop sharing a snapshot with a user: its owner, or an
   * administrator. The user need not exist yet (users live in the CA, not
   * here), but the name must be one a certificate could carry; sharing with
   * the owner is refused. Sharing twice, or unsharing what was not shared,
   * changes nothing. Unsharing leaves volumes already made from it alone.
   */
  private shareSnapshot(input: XmlRecord, ctx: CallContext, share: boolean): XmlRecord {
    const id = v.snapshotId(input.snapshotId);
    const user = v.userName(input.user);
    writeTx(this.meta.db, () => {
      const snap = this.access.snapshotToManage(id, ctx);
      if (user === snap.owner) throw new VbsError('InvalidParameterValue', `Value for parameter user is invalid: ${user} owns the snapshot '${id}'.`);
      if (!share) return this.shares.remove(id, user);
      if (snap.status === 'deleting') throw new VbsError('IncorrectState', `The snapshot '${id}' is being deleted.`);
      this.shares.add(id, user);
    });
    return { return: true };
  }

  /** The users a snapshot is shared with (EC2's createVolumePermission): its owner, or an administrator, only. */
  private describeSharing(input: XmlRecord, ctx: CallContext): XmlRecord {
    const id = v.snapshotId(input.snapshotId);
    this.access.snapshotToManage(id, ctx);
    return { snapshotId: id, user: this.shares.usersOf(id) };
  }

  // --- attachments -----------------------------------------------------------

  private async attachVolume(input: XmlRecord, ctx: CallContext): Promise<XmlRecord> {
    const volumeId = v.volumeId(input.volumeId);
    const form = this.instances.attachForm(input);
    const device = v.device(input.device);
    const mode = v.attachMode(input.mode);
    this.access.volume(volumeId, ctx); // someone else's volume asks no resolver (checked again when journaled)
    // vmmHost + vmId, or an instance id resolved here, before anything is journaled: the caller's own instances only (an administrator: any).
    if (!('instanceId' in form)) this.access.vm(form.vmmHost, form.vmId, ctx);
    const { vmmHost, vmId, instanceId } = await this.instances.attachTarget(form, ctx.caller, this.access.isAdmin(ctx));
    // A failed attach never reuses the placement it was given.
    const forgetPlacement = (err: unknown): never => {
      if (instanceId) this.instances.forget(instanceId, ctx.caller);
      throw err;
    };
    try {
      this.delegates.vmmDelegate(vmmHost); // unknown host: a clear fault before anything changes
      // A volume the host cannot attach (rbd on a Xen host): refused before anything runs.
      await this.attachability.refuseUnattachable(volumeId, this.access.volume(volumeId, ctx).delegate, vmmHost);
    } catch (err) {
      forgetPlacement(err);
    }
    const attached = this.wf.run(this.wf.attach, (): AttachmentData => {
      const vol = this.access.volume(volumeId, ctx);
      if (vol.status !== 'available' && vol.status !== 'in-use') {
        throw new VbsError('IncorrectState', `The volume '${volumeId}' is ${vol.status}; only available or in-use volumes can be attached.`);
      }
      this.modifier.refuseWhileModifying(volumeId, 'attach it');
      const existing = this.meta.attachmentsOf([volumeId]);
      if (existing.some((a) => a.vmm_host === vmmHost && a.vm_id === vmId)) {
        throw new VbsError('VolumeInUse', `The volume '${volumeId}' is already attached to ${vmId} on ${vmmHost}.`);
      }
      const conflict = attachConflict(existing.map((a) => a.mode), mode);
      if (conflict) throw new VbsError('VolumeInUse', `The volume '${volumeId}' cannot be attached in mode ${mode}: ${conflict}.`);
      if (this.meta.attachmentOnDevice(vmmHost, vmId, v.bareDevice(device)) || this.meta.attachmentOnDevice(vmmHost, vmId, `/dev/${v.bareDevice(device)}`)) {
        throw new VbsError('InvalidParameterValue', `Value for parameter device is invalid: ${device} is already used on ${vmId}.`);
      }
      this.meta.insertAttachment({ volume_id: volumeId, vmm_host: vmmHost, vm_id: vmId, device, mode, status: 'attaching' });
      this.meta.recordVolumeHost(volumeId, vmmHost);
      if (instanceId) this.meta.setAttachmentInstance(volumeId, vmmHost, vmId, instanceId);
      this.meta.setVolumeStatus(volumeId, ['available', 'in-use'], 'in-use');
      // The instance id rides in the journaled data beside the host and VM it resolved to.
      const data: AttachmentData & { instanceId?: string } = { volumeId, vmmHost, vmId, device, mode, delegate: vol.delegate, ...(instanceId ? { instanceId } : {}) };
      return data;
    }, volumeId);
    const d = await attached.catch(forgetPlacement);
    const row = this.meta.attachmentsOf([volumeId]).find((a) => a.vmm_host === d.vmmHost && a.vm_id === d.vmId);
    if (!row) throw new VbsError('InternalError', 'attachment vanished after attach');
    return { attachment: attachmentRecord(row) };
  }

  private async detachVolume(input: XmlRecord, ctx: CallContext): Promise<XmlRecord> {
    const volumeId = v.volumeId(input.volumeId);
    const vmmHost = input.vmmHost === undefined ? undefined : v.hostName(input.vmmHost);
    const vmId = input.vmId === undefined ? undefined : v.vmId(input.vmId);
    const instanceId = this.instances.detachInstance(input);
    // Forced (a VMM host that does not answer): src/front/fencing.ts.
    if (input.force === true) return { attachment: await this.fencing.forceDetach(volumeId, { vmmHost, vmId, instanceId }, ctx) };
    let detached: XmlRecord | undefined;
    // A retry whose stalled first attempt the engine finished is answered with that attachment.
    const before = this.meta.attachmentsOf([volumeId]);
    const done = await this.wf.run(this.wf.detach, (): AttachmentData => {
      const vol = this.access.volume(volumeId, ctx);
      const all = this.meta.attachmentsOf([volumeId]);
      const matching = all.filter((a) => (!vmmHost || a.vmm_host === vmmHost) && (!vmId || a.vm_id === vmId) && (!instanceId || a.instance_id === instanceId));
      if (!all.length) throw new VbsError('IncorrectState', `The volume '${volumeId}' is not attached.`);
      if (!matching.length && instanceId) throw new VbsError('InvalidAttachment.NotFound', `The volume '${volumeId}' is not attached to the instance '${instanceId}'.`);
      if (!matching.length) throw new VbsError('InvalidAttachment.NotFound', `The volume '${volumeId}' is not attached to ${vmId ?? 'that VM'} on ${vmmHost ?? 'that host'}.`);
      if (matching.length > 1) {
        throw new VbsError('MissingParameter', `The volume '${volumeId}' has ${matching.length} attachments; name the one to detach with vmmHost and vmId.`);
      }
      const a = matching[0]!;
      if (a.status !== 'attached') throw new VbsError('IncorrectState', `The attachment of '${volumeId}' to ${a.vm_id} is ${a.status}.`);
      this.meta.setAttachmentStatus(volumeId, a.vmm_host, a.vm_id, 'attached', 'detaching');
      detached = attachmentRecord({ ...a, status: 'detaching' });
      return { volumeId, vmmHost: a.vmm_host, vmId: a.vm_id, device: a.device, mode: a.mode, delegate: vol.delegate, source: a.source ? (JSON.parse(a.source) as XmlRecord) : undefined };
    }, volumeId);
    const finished = before.find((a) => a.vmm_host === done.vmmHost && a.vm_id === done.vmId);
    if (!detached && !finished) throw new VbsError('IncorrectState', `The volume '${volumeId}' is not attached.`);
    return { attachment: detached ?? attachmentRecord({ ...finished!, status: 'detaching' }) };
  }
}
