import Database from 'better-sqlite3';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { VBS_HOME } from '../core/paths.js';
import { TRANSIENT_ATTACHMENT_STATES, TRANSIENT_SNAPSHOT_STATES, TRANSIENT_VOLUME_STATES } from '../core/states.js';
import type { AttachmentRow, SnapshotRow, VolumeRow } from '../db/metadata.js';
import { parseQueryBlock } from '../delegates/vmm/listing/qmp.js';

/**
 * The invariants of a running deployment, checked from the outside: the front's
 * SQLite metadata (opened read-only), the volume delegates' files and the
 * simulated hypervisors' own view of their VMs. A deployment is described by
 * the service configuration files in its folder (what `vbs up` writes), so the
 * checker needs nothing but that folder. The soak (src/soak) and the e2e tests
 * (test/e2e/invariants.ts re-exports this module) share it.
 *
 * Two levels:
 * - always (`quiet: false`): what must hold at every instant, even while
 *   requests run: the read-write sharing rule, status in-use iff attached,
 *   no provisioning over a delegate's capacity, no file of a row-less volume
 *   that is not being created.
 * - quiet (the default): once nothing runs, also no transient state, no running
 *   workflow or pending undo, every attachment's disk on its VM and every VM
 *   disk on a volume file backed by an attachment, every usable volume and
 *   completed snapshot with its file, and no file without a row.
 *
 * An lvm-iscsi delegate on the host simulator is read the same way through
 * the tools a storage node has: its objects are the LVs `lvs` lists (a
 * `part.`/`cow.` LV is a partial copy), and, once quiet, each of its iSCSI
 * targets (`iet list`, or `tgtadm --op show` for a real tgtd) must serve an
 * attached volume and each attached volume must have one; on the VMM host,
 * each iSCSI session (`iscsiadm -m session`) must be for a volume attached
 * there, and each by-path disk must have its session.
 *
 * An rbd delegate is read with its own cephx client (`rbd ls -l` of its
 * pool): an image or snapshot named by an id is that object, a `part.` image
 * a partial copy; a `gone.` image or snapshot is a deferred delete
 * (docs/rbd.md), not an object, but once quiet one that nothing reads any
 * more (a `gone.` image without snapshots, a `gone.` snapshot without
 * clones) is a delete the sweep failed to finish.
 *
 * Reading (`observeDeployment`) and judging (`judge`) are apart, so the rules
 * can be tested on a made-up observation.
 */
export interface InvariantOptions {
  /** Check the quiet-deployment invariants too (default true). */
  readonly quiet?: boolean;
}

export interface VolumeDelegateView {
  readonly name: string;
  /** The file back end's folder. */
  readonly root?: string;
  /** The lvm-iscsi back end on the host simulator. */
  readonly lvm?: LvmIscsiView;
  /** The rbd back end: the pool, read with the delegate's own client. */
  readonly rbd?: RbdView;
  readonly capacityGiB?: number;
}

export interface RbdView {
  readonly cephConf: string;
  readonly keyring: string;
  readonly pool: string;
  readonly clientId: string;
}

export interface LvmIscsiView {
  readonly simState: string;
  readonly vg: string;
  readonly target: 'iet' | 'tgt';
  readonly tgtControlPort?: number;
  readonly iqnPrefix: string;
}

export interface VmmHostView {
  readonly name: string;
  /** The host simulator's state folder (sim adapter); hosts without one or a qmpDir are not looked at. */
  readonly simState?: string;
  /** The qemu adapter's folder of QMP sockets: its VMs are asked over QMP (vbs-qmp query-block). */
  readonly qmpDir?: string;
}

export interface DeploymentView {
  readonly dir: string;
  readonly database: string;
  readonly volumeDelegates: readonly VolumeDelegateView[];
  readonly vmmHosts: readonly VmmHostView[];
}

export interface SimDisk {
  dev: string;
  target: string;
  mode: string;
  kind?: string;
}

export interface SimVm {
  name: string;
  disks: SimDisk[];
}

/** One consistent read of the metadata (a single read transaction). */
export interface MetadataView {
  volumes: VolumeRow[];
  snapshots: SnapshotRow[];
  attachments: AttachmentRow[];
  runningWorkflows: { id: number; kind: string; resource_id: string }[];
  leftovers: { id: number; kind: string; step: string; error: string }[];
}

/** An object on a volume delegate: a file (or LV) named by an id; `partial` while a copy is being written. */
export interface StoredObject {
  delegate: VolumeDelegateView;
  id: string;
  bytes: number;
  partial: boolean;
}

/** What one simulated VMM host shows. */
export interface HostObservation {
  readonly host: VmmHostView;
  readonly vms: readonly SimVm[];
  /** The iqns of its open iSCSI sessions. */
  readonly sessions: readonly string[];
  /** The disks' backing files (not by-path devices) that exist on the host. */
  readonly existingFiles: ReadonlySet<string>;
}

/** Everything the invariants are judged on. The quiet-only parts are empty when not read. */
export interface Observation {
  readonly view: DeploymentView;
  readonly metadata: MetadataView;
  readonly objects: readonly StoredObject[];
  /** Per lvm-iscsi delegate name: the iqns its target daemon serves. */
  readonly targets: ReadonlyMap<string, readonly string[]>;
  /** Per rbd delegate name: the `gone.` objects nothing reads any more (read only when quiet). */
  readonly unswept?: ReadonlyMap<string, readonly string[]>;
  readonly hosts: readonly HostObservation[];
}

const GiB = 1024 ** 3;
const HOSTSIM = join(VBS_HOME, 'dist', 'sim', 'hostsim.js');

/** Reads the deployment's service configurations (every *.json with a `role`) in `dir`. */
export function deploymentView(dir: string): DeploymentView {
  let database = join(dir, 'vbs.db');
  const volumeDelegates: VolumeDelegateView[] = [];
  const vmmHosts: VmmHostView[] = [];
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.json'))) {
    let cfg: Record<string, unknown>;
    try {
      cfg = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Record<string, unknown>;
    } catch {
      continue;
    }
    const at = (p: string) => resolve(dirname(join(dir, f)), p);
    if (cfg.role === 'front' && typeof cfg.database === 'string') database = at(cfg.database);
    if (cfg.role === 'volume-delegate') {
      const backend = cfg.backend as { type: string; root: string; capacityGiB?: number } & Omit<LvmIscsiView, 'simState'> & { simState?: string } & Partial<RbdView>;
      const name = String(cfg.name ?? 'volume-delegate');
      // File back ends, and lvm-iscsi ones on the host simulator (a real VG is not looked at).
      if (backend.type === 'file') volumeDelegates.push({ name, root: at(backend.root), capacityGiB: backend.capacityGiB });
      if (backend.type === 'lvm-iscsi' && backend.simState) {
        const { vg, target, tgtControlPort, iqnPrefix } = backend;
        volumeDelegates.push({ name, lvm: { simState: at(backend.simState), vg, target, tgtControlPort, iqnPrefix }, capacityGiB: backend.capacityGiB });
      }
      if (backend.type === 'rbd' && backend.cephConf && backend.keyring && backend.pool) {
        const rbd = { cephConf: at(backend.cephConf), keyring: at(backend.keyring), pool: backend.pool, clientId: backend.clientId ?? 'vbs' };
        volumeDelegates.push({ name, rbd, capacityGiB: backend.capacityGiB });
      }
    }
    if (cfg.role === 'vmm-delegate') {
      const qmpDir = cfg.adapter === 'qemu' && typeof cfg.qmpDir === 'string' ? at(cfg.qmpDir) : undefined;
      vmmHosts.push({ name: String(cfg.hostName), simState: typeof cfg.simState === 'string' ? at(cfg.simState) : undefined, qmpDir });
    }
  }
  return { dir, database, volumeDelegates, vmmHosts };
}

/** The simulated host's VMs and their disks (`hostsim vm list`). */
export function simVms(simState: string): SimVm[] {
  const out = execFileSync(process.execPath, [HOSTSIM, '--state', simState, 'vm', 'list'], { encoding: 'utf8' });
  return JSON.parse(out) as SimVm[];
}

const QMP_TOOL = join(VBS_HOME, 'dist', 'qmp', 'tool.js');

/**
 * The VMs of a qemu host and their disks, as the qemu adapter lists them
 * (vbs-qmp `query-block`, one VM after the other: not one instant, unlike the
 * simulator's state document). A VM whose monitor does not answer is left out.
 */
export function qemuVms(qmpDir: string): SimVm[] {
  const vms: SimVm[] = [];
  for (const f of readdirSync(qmpDir)) {
    if (!f.endsWith('.qmp')) continue;
    const name = f.slice(0, -'.qmp'.length);
    let out: string;
    try {
      out = execFileSync(process.execPath, [QMP_TOOL, '--dir', qmpDir, 'query-block', name], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch {
      continue;
    }
    vms.push({ name, disks: parseQueryBlock(name, out).map((d) => ({ dev: d.device, target: d.target, mode: d.mode, ...(d.partial ? { kind: 'partial' } : {}) })) });
  }
  return vms;
}

/** One consistent read of the metadata, opened read-only. */
export function readMetadata(database: string): MetadataView {
  const db = new Database(database, { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 10000');
    return db.transaction(() => ({
      volumes: db.prepare('SELECT * FROM volumes').all() as VolumeRow[],
      snapshots: db.prepare('SELECT * FROM snapshots').all() as SnapshotRow[],
      attachments: db.prepare('SELECT * FROM attachments').all() as AttachmentRow[],
      runningWorkflows: db.prepare(`SELECT id, kind, resource_id FROM workflows WHERE state = 'running'`).all() as MetadataView['runningWorkflows'],
      leftovers: db.prepare('SELECT id, kind, step, error FROM leftovers').all() as MetadataView['leftovers'],
    }))();
  } finally {
    db.close();
  }
}

function storedObjects(delegates: readonly VolumeDelegateView[]): StoredObject[] {
  const files: StoredObject[] = [];
  for (const d of delegates) {
    if (d.lvm) files.push(...storedLvs(d, d.lvm));
    if (d.rbd) files.push(...storedImages(d, rbdPool(d.rbd)));
    if (!d.root || !existsSync(d.root)) continue;
    for (const f of readdirSync(d.root)) {
      const m = /^(\.)?((?:vol|snap)-[0-9a-f]{17})\.img(\.part)?$/.exec(f);
      if (!m || Boolean(m[1]) !== Boolean(m[3])) continue;
      let bytes: number;
      try {
        bytes = statSync(join(d.root, f)).size;
      } catch {
        continue; // removed while we looked: a copy finishing or a delete
      }
      files.push({ delegate: d, id: m[2]!, bytes, partial: Boolean(m[3]) });
    }
  }
  return files;
}

// --- lvm-iscsi on the host simulator ---------------------------------------------

function hostsim(simState: string, ...args: string[]): string {
  return execFileSync(process.execPath, [HOSTSIM, '--state', simState, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The delegate's objects as `lvs` lists them: an LV named by an id, or a partial copy `part.<id>` / `cow.<id>`. */
function storedLvs(d: VolumeDelegateView, lvm: LvmIscsiView): StoredObject[] {
  const out = hostsim(lvm.simState, 'lvs', '--noheadings', '--units', 'b', '--nosuffix', '--separator', ',', '-o', 'lv_name,lv_size', lvm.vg);
  const lvs: StoredObject[] = [];
  for (const line of out.split('\n')) {
    const m = /^\s*(part\.|cow\.)?((?:vol|snap)-[0-9a-f]{17}),([0-9]+)\s*$/.exec(line);
    if (m) lvs.push({ delegate: d, id: m[2]!, bytes: Number(m[3]), partial: Boolean(m[1]) });
  }
  return lvs;
}

// --- rbd ---------------------------------------------------------------------------

/** One entry of `rbd ls -l --format json`: an image, or (with `snapshot`) one of its snapshots. */
export interface RbdEntry {
  image: string;
  size: number;
  snapshot?: string;
  parent?: { pool?: string; image?: string; snapshot?: string };
}

/**
 * Attempts at one `rbd ls`: Ceph 16's rbd sometimes aborts in librados'
 * shutdown after printing its answer, and `rbd ls -l` names the images, then
 * opens each, so an image renamed or removed in between (a create or delete
 * beside it) makes it exit 2 (ENOENT). The back end lists again the same way
 * (RbdTools.list).
 */
const RBD_LIST_ATTEMPTS = 5;
const ENOENT = 2;

/** `rbd ls -l --format json POOL` with the delegate's own client, bounded as the back end bounds it. */
export function rbdPool(rbd: RbdView): RbdEntry[] {
  const timeout = ['--client_mount_timeout', '10', '--rados_mon_op_timeout', '10', '--rados_osd_op_timeout', '10'];
  const args = ['--conf', rbd.cephConf, '--id', rbd.clientId, '--keyring', rbd.keyring, ...timeout, 'ls', '-l', '--format', 'json', rbd.pool];
  for (let attempt = 1; ; attempt++) {
    try {
      const out = execFileSync('rbd', args, { encoding: 'utf8', env: { ...process.env, CEPH_ARGS: '' }, timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
      return JSON.parse(out.trim() || '[]') as RbdEntry[];
    } catch (err) {
      const e = err as { signal?: string | null; status?: number | null };
      const again = (e.signal && e.signal !== 'SIGTERM') || e.status === ENOENT;
      if (!again || attempt >= RBD_LIST_ATTEMPTS) throw err;
    }
  }
}

const RBD_ID = /^(part\.)?((?:vol|snap)-[0-9a-f]{17})$/;

/** The objects of an rbd pool: images and snapshots named by ids (`part.` images are partial); `gone.` ones are not objects. */
export function storedImages(d: VolumeDelegateView, entries: readonly RbdEntry[]): StoredObject[] {
  const out: StoredObject[] = [];
  for (const e of entries) {
    const m = RBD_ID.exec(e.snapshot ?? e.image);
    if (m && !(e.snapshot && m[1])) out.push({ delegate: d, id: m[2]!, bytes: e.size, partial: Boolean(m[1]) });
  }
  return out;
}

/** The deferred deletes the sweep should have finished: `gone.` snapshots no clone reads, `gone.` images without snapshots. */
export function unsweptOf(entries: readonly RbdEntry[], pool: string): string[] {
  const read = new Set(entries.filter((e) => !e.snapshot && e.parent && (e.parent.pool ?? pool) === pool).map((e) => `${e.parent!.image}@${e.parent!.snapshot}`));
  const out: string[] = [];
  for (const e of entries) {
    if (e.snapshot?.startsWith('gone.') && !read.has(`${e.image}@${e.snapshot}`)) out.push(`${e.image}@${e.snapshot}`);
    if (!e.snapshot && e.image.startsWith('gone.') && !entries.some((x) => x.snapshot && x.image === e.image)) out.push(e.image);
  }
  return out;
}

/** The names (iqns) of the targets the delegate's daemon serves: the simulated IET's /proc listing, or a real tgtd's. */
function targetNames(lvm: LvmIscsiView): string[] {
  const out =
    lvm.target === 'iet'
      ? hostsim(lvm.simState, 'iet', 'list')
      : execFileSync('tgtadm', ['-C', String(lvm.tgtControlPort ?? 0), '--lld', 'iscsi', '--op', 'show', '--mode', 'target'], { encoding: 'utf8' });
  const re = lvm.target === 'iet' ? /^tid:[0-9]+ name:(\S+)/gm : /^Target [0-9]+: (\S+)/gm;
  return [...out.matchAll(re)].map((x) => x[1]!);
}

/** The iqns of the host's open iSCSI sessions (`iscsiadm -m session`; exit 21 means none). */
function sessionIqns(simState: string): string[] {
  let out: string;
  try {
    out = hostsim(simState, 'iscsiadm', '-m', 'session');
  } catch (err) {
    if ((err as { status?: number }).status === 21) return [];
    throw err;
  }
  return [...out.matchAll(/^tcp: \[[0-9]+\] \S+ (\S+)/gm)].map((x) => x[1]!);
}

/** The volume an iqn of ours or an iSCSI by-path device names (`...:<volumeId>[-lun-N]`). */
const iscsiVolume = (name: string) => /:(vol-[0-9a-f]{17})(?:-lun-[0-9]+)?$/.exec(name)?.[1];
const BY_PATH = /^\/dev\/disk\/by-path\/ip-\S+-iscsi-(\S+)-lun-[0-9]+$/;
/** An rbd image a QEMU disk opened, as the qmp listing names it: `rbd:<pool>/<image>`. */
const RBD_TARGET = /^rbd:[^/]+\/((?:vol|snap)-[0-9a-f]{17})$/;

const bare = (dev: string) => dev.replace(/^\/dev\//, '');

/** The volume (or snapshot) a VM disk's target names: its file, or its iSCSI by-path device; undefined for a VM's own disks. */
export function volumeOfDiskTarget(target: string): string | undefined {
  const rbd = RBD_TARGET.exec(target)?.[1];
  if (rbd) return rbd;
  return /^((?:vol|snap)-[0-9a-f]{17})\.img$/.exec(basename(target))?.[1] ?? (BY_PATH.test(target) ? iscsiVolume(target) : undefined);
}

/** Reads everything the invariants look at; the hosts and targets only when `quiet` (they are judged only then). */
export function observeDeployment(dir: string, opts: InvariantOptions = {}): Observation {
  const quiet = opts.quiet ?? true;
  const view = deploymentView(dir);
  const metadata = readMetadata(view.database);
  const objects: StoredObject[] = [];
  const unswept = new Map<string, string[]>();
  for (const d of view.volumeDelegates) {
    if (!d.rbd) {
      objects.push(...storedObjects([d]));
      continue;
    }
    // One listing serves both the objects and the deferred deletes.
    const entries = rbdPool(d.rbd);
    objects.push(...storedImages(d, entries));
    if (quiet) unswept.set(d.name, unsweptOf(entries, d.rbd.pool));
  }
  const targets = new Map<string, string[]>();
  const hosts: HostObservation[] = [];
  if (quiet) {
    for (const d of view.volumeDelegates) if (d.lvm) targets.set(d.name, targetNames(d.lvm));
    // Only iSCSI back ends make sessions (one process less per look at a file deployment).
    const iscsi = view.volumeDelegates.some((d) => d.lvm);
    for (const host of view.vmmHosts) {
      if (host.qmpDir) {
        hosts.push({ host, vms: qemuVms(host.qmpDir), sessions: [], existingFiles: new Set() });
        continue;
      }
      if (!host.simState) continue;
      const vms = simVms(host.simState);
      const existingFiles = new Set<string>();
      for (const vm of vms) for (const disk of vm.disks) if (!BY_PATH.test(disk.target) && existsSync(disk.target)) existingFiles.add(disk.target);
      hosts.push({ host, vms, sessions: iscsi ? sessionIqns(host.simState) : [], existingFiles });
    }
  }
  return { view, metadata, objects, targets, unswept, hosts };
}

/**
 * Every invariant that does not hold in `obs`, as readable sentences; an
 * empty list means the deployment is consistent.
 */
export function judge(obs: Observation, opts: InvariantOptions = {}): string[] {
  const quiet = opts.quiet ?? true;
  const { view, metadata: m, objects: files } = obs;
  const bad: string[] = [];
  const volumeById = new Map(m.volumes.map((v) => [v.volume_id, v]));
  const snapshotById = new Map(m.snapshots.map((s) => [s.snapshot_id, s]));
  const attachmentsOf = new Map<string, AttachmentRow[]>();
  for (const a of m.attachments) attachmentsOf.set(a.volume_id, [...(attachmentsOf.get(a.volume_id) ?? []), a]);

  // The sharing rule: one read-write attachment alone, or read-only ones only.
  for (const [id, list] of attachmentsOf) {
    const writers = list.filter((a) => a.mode === 'w').length;
    if (writers > 1) bad.push(`${id} has ${writers} read-write attachments`);
    if (writers && list.length > writers) bad.push(`${id} mixes read-write and read-only attachments`);
    const vol = volumeById.get(id);
    if (!vol) bad.push(`attachment of ${id} to ${list[0]!.vm_id} has no volume row`);
    else if (vol.status !== 'in-use') bad.push(`${id} is ${vol.status} but has ${list.length} attachment(s)`);
  }
  for (const v of m.volumes) {
    if (v.status === 'in-use' && !attachmentsOf.has(v.volume_id)) bad.push(`${v.volume_id} is in-use with no attachment`);
  }

  // No device used twice on one VM.
  const devices = new Set<string>();
  for (const a of m.attachments) {
    const key = `${a.vmm_host}/${a.vm_id}/${bare(a.device)}`;
    if (devices.has(key)) bad.push(`device ${key} is recorded for two attachments`);
    devices.add(key);
  }

  // Files: never over capacity; a file's row exists unless it is still being made or deleted.
  for (const d of view.volumeDelegates) {
    if (d.capacityGiB === undefined) continue;
    const provisioned = files.filter((f) => f.delegate === d).reduce((n, f) => n + (f.partial ? 0 : f.bytes), 0);
    if (provisioned > d.capacityGiB * GiB) bad.push(`volume delegate ${d.name} holds ${provisioned / GiB} GiB, over its capacity of ${d.capacityGiB} GiB`);
  }
  const rowOf = (id: string) => (id.startsWith('vol-') ? volumeById.get(id) : snapshotById.get(id));
  for (const f of files) {
    const row = rowOf(f.id);
    if (f.partial) {
      if (quiet) bad.push(`a partial copy of ${f.id} remains on ${f.delegate.name}`);
      continue;
    }
    if (!row) {
      if (quiet) bad.push(`${f.id} has a file on ${f.delegate.name} but no row`);
      continue;
    }
    if (row.delegate !== f.delegate.name) bad.push(`${f.id} has a file on ${f.delegate.name} but belongs to ${row.delegate}`);
    if (f.bytes !== row.size_gib * GiB && !['creating', 'pending'].includes(row.status)) {
      bad.push(`${f.id} is ${row.size_gib} GiB but its file holds ${f.bytes} bytes`);
    }
  }
  if (!quiet) return bad;

  // Quiet: nothing in flight.
  for (const v of m.volumes) if (TRANSIENT_VOLUME_STATES.includes(v.status)) bad.push(`${v.volume_id} is still ${v.status}`);
  for (const s of m.snapshots) if (TRANSIENT_SNAPSHOT_STATES.includes(s.status)) bad.push(`${s.snapshot_id} is still ${s.status}`);
  for (const a of m.attachments) if (TRANSIENT_ATTACHMENT_STATES.includes(a.status)) bad.push(`the attachment of ${a.volume_id} to ${a.vm_id} is still ${a.status}`);
  for (const w of m.runningWorkflows) bad.push(`workflow ${w.id} (${w.kind} of ${w.resource_id}) is still running`);
  for (const l of m.leftovers) bad.push(`undo ${l.kind}/${l.step} is still pending: ${l.error}`);

  const fileIds = new Set(files.filter((f) => !f.partial).map((f) => f.id));
  for (const v of m.volumes) {
    if ((v.status === 'available' || v.status === 'in-use') && !fileIds.has(v.volume_id)) bad.push(`${v.volume_id} is ${v.status} but has no file`);
  }
  for (const s of m.snapshots) if (s.status === 'completed' && !fileIds.has(s.snapshot_id)) bad.push(`${s.snapshot_id} is completed but has no file`);

  // rbd: a deferred delete nothing reads any more was swept.
  for (const [name, left] of obs.unswept ?? []) for (const x of left) bad.push(`${x} on ${name} is a deferred delete nothing reads, yet it was not removed`);

  // Every target serves an attached volume; every attached volume has its target.
  for (const d of view.volumeDelegates) {
    if (!d.lvm) continue;
    const targets = obs.targets.get(d.name) ?? [];
    for (const iqn of targets) {
      const id = iscsiVolume(iqn);
      if (iqn.startsWith(`${d.lvm.iqnPrefix}:`) && id && !attachmentsOf.has(id)) bad.push(`target ${iqn} on ${d.name} serves ${id}, which has no attachment`);
    }
    for (const id of attachmentsOf.keys()) {
      if (volumeById.get(id)?.delegate === d.name && !targets.includes(`${d.lvm.iqnPrefix}:${id}`)) bad.push(`${id} is attached but ${d.name} has no target for it`);
    }
  }

  // The hypervisors agree with the attachments, both ways.
  const volumeFile = volumeOfDiskTarget;
  for (const { host, vms, sessions, existingFiles } of obs.hosts) {
    const recorded = m.attachments.filter((a) => a.vmm_host === host.name);
    for (const iqn of sessions) {
      const id = iscsiVolume(iqn);
      if (id && !recorded.some((a) => a.volume_id === id)) bad.push(`${host.name} has an iSCSI session to ${iqn} with no attachment of ${id} there`);
    }
    for (const a of recorded) {
      const vm = vms.find((x) => x.name === a.vm_id);
      const disk = vm?.disks.find((d) => bare(d.dev) === bare(a.device));
      if (!disk) bad.push(`${a.volume_id} is recorded on ${a.vm_id}/${a.device} at ${host.name}, but the VM has no such disk`);
      else {
        if (volumeFile(disk.target) !== a.volume_id) bad.push(`${a.vm_id}/${a.device} at ${host.name} holds ${disk.target}, not ${a.volume_id}`);
        if (disk.mode !== a.mode) bad.push(`${a.vm_id}/${a.device} at ${host.name} is attached ${disk.mode}, recorded ${a.mode}`);
        const byPath = BY_PATH.exec(disk.target);
        if (byPath && !sessions.includes(byPath[1]!)) bad.push(`${a.vm_id}/${a.device} at ${host.name} is ${disk.target}, with no iSCSI session behind it`);
        if (!byPath && !RBD_TARGET.test(disk.target) && !existingFiles.has(disk.target)) bad.push(`${a.vm_id}/${a.device} at ${host.name} points to a missing file ${disk.target}`);
      }
    }
    for (const vm of vms) {
      for (const d of vm.disks) {
        const id = volumeFile(d.target);
        if (!id) continue; // not a VBS volume (the VM's own disks)
        if (!recorded.some((a) => a.vm_id === vm.name && bare(a.device) === bare(d.dev) && a.volume_id === id)) {
          bad.push(`${vm.name}/${d.dev} at ${host.name} holds ${id} with no attachment record`);
        }
      }
    }
  }
  return bad;
}

/**
 * Every invariant that does not hold, as readable sentences; an empty list
 * means the deployment is consistent.
 */
export function findViolations(dir: string, opts: InvariantOptions = {}): string[] {
  return judge(observeDeployment(dir, opts), opts);
}

/** Throws one error listing every violated invariant. */
export function assertInvariants(dir: string, opts: InvariantOptions = {}): void {
  const bad = findViolations(dir, opts);
  if (bad.length) throw new Error(`deployment invariants violated:\n  - ${bad.join('\n  - ')}`);
}

/** True when nothing is in flight: no transient record, running workflow or partial copy. */
export function isQuiet(dir: string): boolean {
  const view = deploymentView(dir);
  const m = readMetadata(view.database);
  return (
    !m.volumes.some((v) => TRANSIENT_VOLUME_STATES.includes(v.status)) &&
    !m.snapshots.some((s) => TRANSIENT_SNAPSHOT_STATES.includes(s.status)) &&
    !m.attachments.some((a) => TRANSIENT_ATTACHMENT_STATES.includes(a.status)) &&
    m.runningWorkflows.length === 0 &&
    m.leftovers.length === 0 &&
    !storedObjects(view.volumeDelegates).some((f) => f.partial)
  );
}

/** Waits (bounded) until the deployment is quiet, then asserts every invariant. */
export async function settleAndCheck(dir: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!isQuiet(dir)) {
    if (Date.now() > end) {
      throw new Error(`the deployment did not become quiet within ${ms} ms:\n  - ${findViolations(dir).join('\n  - ')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  assertInvariants(dir);
}

/**
 * Samples the invariants that hold at every instant (`quiet: false`) while
 * requests run; `stop()` ends the sampling and returns every violation seen.
 */
export function watchInvariants(dir: string, everyMs = 20): { stop(): string[] } {
  const seen = new Set<string>();
  const sample = () => {
    try {
      for (const b of findViolations(dir, { quiet: false })) seen.add(b);
    } catch (err) {
      seen.add(`the invariants could not be read: ${(err as Error).message}`);
    }
  };
  const timer = setInterval(sample, everyMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return [...seen];
    },
  };
}
