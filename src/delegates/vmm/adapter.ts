import { isAbsolute } from 'node:path';
import { VbsError } from '../../core/errors.js';
import { VBS_HOME } from '../../core/paths.js';
import * as v from '../../core/validate.js';
import type { AttachMode } from '../../core/states.js';
import type { CommandCatalog } from '../../commands/catalog.js';
import { placeholdersOf } from '../../commands/pattern.js';
import { CommandFailed, type CommandRunner } from '../../commands/runner.js';
import { UnknownOutcome } from '../../commands/unknown-outcome.js';
import { byPathDevice, chapParams, iscsiLun, requireChapDelivery, type IscsiLun } from './iscsi-target.js';
import { iscsiDiskXml, iscsiUrl, rbdDiskXml, rbdSecretXml, splitPortal } from './libvirt-disk.js';
import { LibvirtSecrets, withPrivateFile } from './libvirt-secret.js';
import { rbdSource, rbdTarget, secretUuidOf, type RbdSource } from '../../core/rbd-export.js';
import { LISTING_FORMATS, listingFormatName, type ListedDisk, type ListingFormat } from './listing/index.js';
import { INITIATOR_PREFIX } from '../../qmp/disks.js';
import { volumeIdOf } from './volume-of.js';

export interface DiskSource {
  kind: string;
  path?: string;
  portal?: string;
  iqn?: string;
  lun?: number;
}

/** The kinds of disk source a host can attach (DescribeHost's sourceKinds). */
export type SourceKind = 'file' | 'iscsi' | 'rbd';

/** What ResizeDisk did: told the hypervisor, nothing needed (it notices itself), or no such disk on the VM. */
export type ResizeOutcome = 'resized' | 'automatic' | 'absent';

export interface VmDisk extends ListedDisk {
  vmId: string;
  volumeId?: string;
}

/**
 * A hypervisor adapter is nothing but a group of patterns, vmm.<name>.*:
 * moving from Xen to Proxmox is an edit of commands.properties.
 *
 *   attach / detach            a file source (`file:<path>`, `target=<path>`...)
 *   attach-device              a host block device, such as a logged-in iSCSI LUN (`phy:<vmmDev>`)
 *   attach-iscsi               with option.iscsi = direct: an iSCSI LUN the hypervisor opens
 *                              itself (QEMU's iscsi driver); no initiator, no host device
 *   attach-rbd                 a Ceph RBD image the hypervisor opens itself (QEMU's rbd
 *                              driver); a host without it cannot attach rbd volumes
 *   rbd.secret-*               where the hypervisor keeps keys as secret objects (libvirt):
 *                              define one per export at LoginTarget, remove it at LogoutTarget
 *   list-vms / list-disks      the VMs, and one VM's disks, printed in option.listFormat
 *   iscsi.*                    the initiator (see initiator.ts)
 */
export class VmmAdapter {
  /** True when the hypervisor reaches iSCSI LUNs itself (vmm.<name>.option.iscsi = direct). */
  readonly iscsiDirect: boolean;
  /** CHAP passwords of network disks, as libvirt secrets (libvirt-secret.ts). */
  private readonly secrets: LibvirtSecrets;

  constructor(
    readonly name: string,
    private readonly runner: CommandRunner,
    private readonly volumeRoots: readonly string[],
  ) {
    this.iscsiDirect = runner.catalog.setting(`vmm.${name}.option.iscsi`) === 'direct';
    this.secrets = new LibvirtSecrets(name, runner);
  }

  static patternsFor(name: string, iscsiDirect = false): string[] {
    return [`vmm.${name}.attach`, `vmm.${name}.detach`, ...(iscsiDirect ? [`vmm.${name}.attach-iscsi`] : [])];
  }

  /**
   * The adapter this delegate runs: its configuration's `adapter`, else
   * `vmm.adapter` of commands.properties. There is no default: a delegate
   * that names none would otherwise attach volumes to a simulator while the
   * operator believes they reach real VMs (fail closed).
   */
  static choose(catalog: CommandCatalog, override?: string): string {
    const name = override ?? catalog.setting('vmm.adapter');
    if (name === undefined || name === '') {
      throw new Error(
        `no VMM adapter is chosen: set "adapter" in the vmm-delegate configuration (or vmm.adapter in ${catalog.source}) to one of sim, xen, xl, libvirt, qemu, proxmox`,
      );
    }
    if (!/^[a-z][a-z0-9-]*$/.test(name)) throw new Error(`commands: vmm.adapter '${name}' is not an adapter name`);
    const iscsi = catalog.setting(`vmm.${name}.option.iscsi`);
    if (iscsi !== undefined && iscsi !== 'direct' && iscsi !== 'initiator') {
      throw new Error(`commands: vmm.${name}.option.iscsi '${iscsi}' is not one of direct, initiator`);
    }
    catalog.requireAll(VmmAdapter.patternsFor(name, iscsi === 'direct'));
    const format = catalog.setting(`vmm.${name}.option.listFormat`);
    if (format !== undefined && !LISTING_FORMATS[format]) {
      throw new Error(`commands: vmm.${name}.option.listFormat '${format}' is not one of ${Object.keys(LISTING_FORMATS).join(', ')}`);
    }
    return name;
  }

  private key(action: string): string {
    const key = `vmm.${this.name}.${action}`;
    if (!this.runner.catalog.has(key)) throw new VbsError('OperationFailed', `This VMM host cannot do that: its commands.properties has no ${key}.`);
    return key;
  }

  /** The local path of a file source, which must lie under a configured volume root. */
  private localPath(source: DiskSource): string {
    const path = v.requireString('source.path', source.path);
    for (const root of this.volumeRoots) {
      try {
        return v.pathUnder(root, path, 'source.path');
      } catch {
        // try the next root
      }
    }
    throw new VbsError('InvalidParameterValue', 'Value for parameter source.path is invalid: it is not under a volume folder of this host.');
  }

  /** What a source becomes on this host: the pattern that attaches it and the host path it names. */
  private plan(source: DiskSource): { key: string; params: Record<string, string>; hostPath: string; lun?: IscsiLun; rbd?: RbdSource } {
    switch (source.kind) {
      case 'rbd': {
        const rbd = this.rbdSource(source);
        const params = { rbdPool: rbd.pool, rbdImage: rbd.image, monitors: rbd.monitors, cephUser: rbd.cephUser, cephKey: rbd.cephKey, secretUuid: secretUuidOf(rbd.cephUser) };
        return { key: this.key('attach-rbd'), params, hostPath: rbdTarget(rbd.pool, rbd.image), rbd };
      }
      case 'file': {
        const path = this.localPath(source);
        return { key: `vmm.${this.name}.attach`, params: { path }, hostPath: path };
      }
      case 'iscsi': {
        const lun = iscsiLun(source);
        if (this.iscsiDirect) {
          const [portalHost, portalPort] = splitPortal(lun.portal);
          const params = { portalHost, portalPort: String(portalPort), iqn: lun.iqn, lun: String(lun.lun) };
          return { key: this.key('attach-iscsi'), params, hostPath: iscsiUrl(lun), lun };
        }
        const vmmDev = byPathDevice(lun);
        return { key: this.key('attach-device'), params: { vmmDev }, hostPath: vmmDev };
      }
      default:
        throw new VbsError('InvalidParameterValue', 'Value for parameter source.kind is invalid: expected file, iscsi or rbd.');
    }
  }

  /** The kinds of source this host's patterns can attach. */
  sourceKinds(): SourceKind[] {
    const has = (action: string) => this.runner.catalog.has(`vmm.${this.name}.${action}`);
    return [
      ...(has('attach') ? (['file'] as const) : []),
      ...(has(this.iscsiDirect ? 'attach-iscsi' : 'attach-device') ? (['iscsi'] as const) : []),
      ...(has('attach-rbd') ? (['rbd'] as const) : []),
    ];
  }

  /**
   * An rbd source, checked, from a host that can attach one: a host without
   * attach-rbd (Xen's patterns) refuses here, before anything runs, and so
   * does one whose pattern would not get the key to the hypervisor.
   */
  rbdSource(source: DiskSource): RbdSource {
    const rbd = rbdSource(source as unknown as Record<string, unknown>);
    if (!this.runner.catalog.has(`vmm.${this.name}.attach-rbd`)) {
      throw new VbsError('InvalidParameterCombination', `This VMM host (${this.name}) cannot attach Ceph RBD volumes: its commands.properties has no vmm.${this.name}.attach-rbd.`);
    }
    const key = `vmm.${this.name}.attach-rbd`;
    const viaSecret = this.runner.catalog.has(`vmm.${this.name}.rbd.secret-set`) && this.runner.catalog.has(`vmm.${this.name}.rbd.secret-define`);
    if (!viaSecret && !this.runner.catalog.uses(key, 'cephKey')) {
      throw new VbsError('OperationFailed', `This VMM host's ${key} pattern does not deliver <cephKey> (${key}.stdin or ${key}.env.VAR), and it keeps no libvirt secrets (vmm.${this.name}.rbd.secret-define, secret-set).`);
    }
    return rbd;
  }

  /**
   * LoginTarget of an rbd source, where the hypervisor keeps keys as secret
   * objects (libvirt): defines the export's secret (its UUID derived from the
   * cephx client, so a second VM or a retry finds the same one) and sets its
   * value from standard input. Elsewhere (QEMU over QMP) the key travels with
   * the attach, and there is nothing to do.
   */
  async connectRbd(rbd: RbdSource): Promise<void> {
    if (!this.runner.catalog.has(`vmm.${this.name}.rbd.secret-define`)) return;
    const secretUuid = secretUuidOf(rbd.cephUser);
    await withPrivateFile('secret.xml', rbdSecretXml(rbd.cephUser, secretUuid), (path) => this.runner.run(this.key('rbd.secret-define'), { path }));
    // The value in a private file virsh reads (--file): never on a command line.
    await withPrivateFile('key', rbd.cephKey, (path) => this.runner.run(this.key('rbd.secret-set'), { secretUuid, path }));
  }

  /**
   * LogoutTarget of an rbd source (the last disk of the export on this host
   * is gone): removes the export's secret. One that is not there is removed
   * already; a removal that fails is judged by listing the secrets again.
   */
  async disconnectRbd(rbd: RbdSource): Promise<void> {
    if (!this.runner.catalog.has(`vmm.${this.name}.rbd.secret-undefine`)) return;
    const secretUuid = secretUuidOf(rbd.cephUser);
    const listed = async () => (await this.runner.run(this.key('rbd.secret-list'), {})).stdout.includes(secretUuid);
    if (!(await listed())) return;
    try {
      await this.runner.run(this.key('rbd.secret-undefine'), { secretUuid });
    } catch (e) {
      if (!(e instanceof CommandFailed)) throw e;
      let still: boolean;
      try {
        still = await listed();
      } catch (listErr) {
        throw UnknownOutcome.of(`removal of the secret of client.${rbd.cephUser}`, e, listErr);
      }
      if (still) throw e;
    }
  }

  /**
   * Attaches; attaching what is already attached there, the same way, is done
   * already. A command that failed may still have acted (killed after the
   * hypervisor took the device), so its failure is read from the VM's disks
   * afterwards: the disk there is done; nothing of this source on the device
   * (or no such VM) is a refusal; a listing that fails is an unknown outcome.
   */
  async attach(vmId: string, device: string, mode: AttachMode, source: DiskSource): Promise<void> {
    const { key, params, hostPath, lun, rbd } = this.plan(source);
    const vmDev = v.bareDevice(device);
    let secretMade = false;
    try {
      // <initiator>: the name the target admits for this host (fencing), or
      // (a target that admits anyone) one per VM, as QEMU was always given.
      const initiator = lun ? lun.initiator ?? `${INITIATOR_PREFIX}:${vmId}` : undefined;
      const all = { vmId, vmDev, mode, access: mode === 'r' ? 'ro' : 'rw', ...params, ...(initiator ? { initiator } : {}), ...(lun ? chapParams(lun) : {}) };
      const takesXml = placeholdersOf(this.runner.catalog.pattern(key, mode)).includes('path');
      const asXml = lun !== undefined && takesXml;
      // A disk libvirt takes as XML gets its CHAP password from a libvirt secret; another, from its own pattern.
      const withSecret = asXml && lun.chap !== undefined && this.secrets.available;
      // Otherwise the attach pattern itself must deliver the password (QEMU's vbs-qmp does).
      if (lun && this.iscsiDirect && !withSecret) requireChapDelivery(lun, this.runner.catalog.uses(key, 'chapSecret', mode), key);
      if (asXml) {
        // libvirt takes a network disk as XML (virsh attach-device <vm> <file>).
        secretMade = withSecret;
        const secret = withSecret ? await this.secrets.define(vmId, vmDev, lun.chap!) : undefined;
        await withPrivateFile('disk.xml', iscsiDiskXml(lun, vmDev, mode, secret?.usage), (path) => this.runner.run(key, { ...all, path }, mode));
      } else if (rbd && takesXml) {
        // option.rbdConf: a ceph.conf for QEMU's client (short mount timeouts), an operator's absolute path.
        const conf = this.runner.catalog.setting(`vmm.${this.name}.option.rbdConf`);
        if (conf !== undefined && !(isAbsolute(conf) && !/[\0\n\r]/.test(conf))) {
          throw new VbsError('OperationFailed', `This VMM host's vmm.${this.name}.option.rbdConf is not an absolute path.`);
        }
        await withPrivateFile('disk.xml', rbdDiskXml(rbd, vmDev, mode, params.secretUuid!, conf), (path) => this.runner.run(key, { ...all, path }, mode));
      } else {
        await this.runner.run(key, all, mode);
      }
    } catch (e) {
      if (!(e instanceof CommandFailed)) throw e;
      const seen = await this.look(vmId, `attach to ${vmId} as ${vmDev}`, e);
      const there = seen === 'absent' ? undefined : seen.find((d) => d.device === vmDev);
      if (there?.target === hostPath && !there.partial && there.mode === mode) return;
      // Part of the disk is there (its cleanup failed too): something changed,
      // so not a refusal; the caller's undo (a detach) removes it.
      if (there?.target === hostPath && there.partial) throw new UnknownOutcome(`attach to ${vmId} as ${vmDev}`, [e], 'part of the disk was left on the VM');
      // Nothing of this source is on the device (another disk, or this one in
      // another mode, which an attach command does not change): it refused.
      // A secret made for it goes (best effort: the detach that undoes the
      // step removes it too).
      if (secretMade && !there) await this.secrets.undefine(vmId, vmDev).catch(() => undefined);
      throw e;
    }
  }

  /**
   * Detaches the volume's disk, only once the VM's disks have been seen: a
   * device that holds nothing, or another disk than this volume's, has
   * nothing of this volume to detach (a leftover undo must not pull a disk a
   * newer attach put on the same device), and a VM the host does not have
   * holds nothing (destroyed, migrated away). A listing that fails is an
   * unknown outcome, never a reason to detach blindly.
   */
  async detach(vmId: string, device: string, volumeId: string, source?: DiskSource): Promise<void> {
    const vmDev = v.bareDevice(device);
    const what = `detach from ${vmId} of ${vmDev}`;
    const holds = (seen: ListedDisk[] | 'absent') => {
      const there = seen === 'absent' ? undefined : seen.find((d) => d.device === vmDev);
      return there !== undefined && this.isDiskOf(there, volumeId, source);
    };
    // Only an iSCSI disk can have a CHAP secret (a detach without its source may be one).
    const secretToo = source === undefined || source.kind === 'iscsi';
    const seen = await this.look(vmId, what);
    if (!holds(seen)) return secretToo ? this.forgetSecret(vmId, vmDev, seen) : undefined;
    try {
      await this.runner.run(`vmm.${this.name}.detach`, { vmId, vmDev });
    } catch (e) {
      if (!(e instanceof CommandFailed)) throw e;
      const after = await this.look(vmId, what, e);
      if (!holds(after)) return secretToo ? this.forgetSecret(vmId, vmDev, after) : undefined;
      throw e; // the disk is still there: nothing changed
    }
    if (secretToo) await this.secrets.undefine(vmId, vmDev);
  }

  /**
   * The libvirt secret of a disk this volume no longer has on the device
   * (detached, or its attach never finished): undefined, unless another disk
   * now holds the device, whose secret it may be (look, then act).
   */
  private async forgetSecret(vmId: string, vmDev: string, seen: ListedDisk[] | 'absent'): Promise<void> {
    if (seen !== 'absent' && seen.some((d) => d.device === vmDev)) return;
    await this.secrets.undefine(vmId, vmDev);
  }

  /**
   * Tells the hypervisor the volume behind the VM's device grew
   * (vmm.<name>.resize, with <bytes>, <sizeKiB>, <vmDev>, <path>). Looks first:
   * a VM or device that does not hold this volume's disk has nothing to be
   * told ('absent'). `vmm.<name>.option.resize = automatic`: the hypervisor
   * sees a grown device by itself (Xen's blkback watches its phy: device's
   * size and tells the guest's blkfront), so nothing runs. A listing that
   * fails is an unknown outcome, as for detach.
   */
  async resize(vmId: string, device: string, volumeId: string, bytes: number, source?: DiskSource): Promise<ResizeOutcome> {
    const vmDev = v.bareDevice(device);
    const what = `resize of ${vmDev} on ${vmId}`;
    const seen = await this.look(vmId, what);
    const there = seen === 'absent' ? undefined : seen.find((d) => d.device === vmDev);
    if (!there || !this.isDiskOf(there, volumeId, source)) return 'absent';
    if (this.runner.catalog.setting(`vmm.${this.name}.option.resize`) === 'automatic') return 'automatic';
    const key = this.key('resize');
    // <path>: the file or host device behind the disk (an iSCSI URL is no path: a pattern for those names the device).
    const path = there.target.startsWith('/') ? { path: there.target } : {};
    await this.runner.run(key, { vmId, vmDev, bytes: String(bytes), sizeKiB: String(bytes / 1024), ...path });
    return 'resized';
  }

  /**
   * The VM's disks, or 'absent' when the host's VM listing works and does not
   * show the VM (it holds nothing). Anything else that stops us seeing is an
   * unknown outcome for the step (`failure`: the command that already failed).
   */
  private async look(vmId: string, what: string, failure?: CommandFailed): Promise<ListedDisk[] | 'absent'> {
    try {
      return await this.disksOf(vmId);
    } catch (listErr) {
      // An adapter that cannot list at all (no listing patterns) refuses before acting.
      if (!failure && isConfigRefusal(listErr)) throw listErr;
      let vms: string[];
      try {
        vms = await this.vmIds();
      } catch (vmsErr) {
        throw UnknownOutcome.of(what, failure, listErr, vmsErr);
      }
      if (!vms.includes(vmId)) return 'absent';
      throw UnknownOutcome.of(what, failure, listErr);
    }
  }

  private isDiskOf(disk: ListedDisk, volumeId: string, source?: DiskSource): boolean {
    if (source) {
      try {
        return disk.target === this.plan(source).hostPath;
      } catch {
        // a source this host cannot place: judge by the volume id alone
      }
    }
    return volumeIdOf(disk.target, this.volumeRoots) === volumeId;
  }

  private format(): ListingFormat {
    const name = listingFormatName(this.name, this.runner.catalog.setting(`vmm.${this.name}.option.listFormat`));
    const format = name ? LISTING_FORMATS[name] : undefined;
    if (!format) throw new VbsError('OperationFailed', `This VMM host cannot list disks: set vmm.${this.name}.option.listFormat in its commands.properties.`);
    return format;
  }

  async vmIds(): Promise<string[]> {
    return this.format().vmIds((await this.runner.run(this.key('list-vms'), {})).stdout);
  }

  async disksOf(vmId: string): Promise<ListedDisk[]> {
    return this.format().disks(vmId, (await this.runner.run(this.key('list-disks'), { vmId })).stdout);
  }

  /**
   * The disks of the given VMs, or of every VM of the host. A VM the host does
   * not have has no disks (the consistency check then sees its attachments gone).
   */
  async listDisks(wanted: readonly string[]): Promise<VmDisk[]> {
    const all = await this.vmIds();
    const vmIds = wanted.length ? [...new Set(wanted)].filter((id) => all.includes(id)) : all;
    const out: VmDisk[] = [];
    for (const vmId of vmIds) {
      for (const d of await this.disksOf(vmId)) {
        const volumeId = volumeIdOf(d.target, this.volumeRoots);
        out.push({ vmId, ...d, ...(volumeId ? { volumeId } : {}) });
      }
    }
    return out;
  }
}

/** A refusal of this host's configuration (no such pattern), not a failure to look. */
function isConfigRefusal(err: unknown): boolean {
  return err instanceof VbsError && !(err instanceof CommandFailed) && err.code === 'OperationFailed';
}

export const FIXED_PARAMS = { node: process.execPath, vbsHome: VBS_HOME };
