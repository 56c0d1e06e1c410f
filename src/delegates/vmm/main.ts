import { VbsError } from '../../core/errors.js';
import { KeyedMutex } from '../../core/keyed-mutex.js';
import type { Logger } from '../../core/log.js';
import { DEFAULT_COMMANDS_FILE } from '../../core/paths.js';
import * as v from '../../core/validate.js';
import { CommandCatalog } from '../../commands/catalog.js';
import { commandHelper } from '../../commands/helper-client.js';
import { CommandRunner } from '../../commands/runner.js';
import type { VmmDelegateConfig } from '../../config/service-config.js';
import { VMM_DELEGATE_SERVICE } from '../../services/vmm-delegate.js';
import type { RunningService } from '../../core/service.js';
import type { Handlers } from '../../soap/server.js';
import { VMM_GENERATION_RULES } from '../generation-rules.js';
import { GenerationMemory, guardGenerations } from '../generations.js';
import { listenDelegate } from '../listen.js';
import { FIXED_PARAMS, VmmAdapter, type DiskSource } from './adapter.js';
import { IscsiInitiator } from './initiator.js';
import { iscsiLun, type IscsiLun } from './iscsi-target.js';
import { iscsiUrl } from './libvirt-disk.js';
import { rbdTarget, type RbdSource } from '../../core/rbd-export.js';

type SourceInput = { kind?: unknown; portal?: unknown; iqn?: unknown; lun?: unknown };

/** The iSCSI LUN a connection operation names; file sources need no connection (undefined). */
function connectionOf(input: { volumeId?: unknown; source?: unknown }): IscsiLun | undefined {
  v.volumeId(input.volumeId);
  const source = (input.source ?? {}) as SourceInput;
  if (source.kind === 'file') return undefined;
  if (source.kind !== 'iscsi') throw new VbsError('InvalidParameterValue', 'Value for parameter source.kind is invalid: expected file, iscsi or rbd.');
  return iscsiLun(source);
}

/** An rbd source of a connection operation, checked by a host that can attach it; undefined for other kinds. */
function rbdOf(adapter: VmmAdapter, input: { volumeId?: unknown; source?: unknown }): RbdSource | undefined {
  const source = (input.source ?? {}) as SourceInput;
  if (source.kind !== 'rbd') return undefined;
  const volumeId = v.volumeId(input.volumeId);
  const rbd = adapter.rbdSource(source as unknown as DiskSource);
  if (rbd.image !== volumeId) throw new VbsError('InvalidParameterValue', 'Value for parameter source.image is invalid: it is not the volume named.');
  return rbd;
}

/** A grown disk's size: whole GiB, as volumes are, up to the largest volume. */
function diskBytes(x: unknown): number {
  const n = typeof x === 'string' && /^[0-9]{1,16}$/.test(x) ? Number(x) : x;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n <= 0 || n % GIB !== 0 || n / GIB > v.MAX_VOLUME_GIB) {
    throw new VbsError('InvalidParameterValue', 'Value for parameter sizeBytes is invalid: expected a whole number of GiB in bytes.');
  }
  return n;
}

const GIB = 1024 ** 3;

export function vmmDelegateHandlers(hostName: string, adapter: VmmAdapter, initiator: IscsiInitiator): Handlers {
  const perVm = new KeyedMutex();
  return {
    DescribeHost: () => ({ hostName, adapter: adapter.name, sourceKinds: adapter.sourceKinds() }),
    // One disk change at a time per VM: an undo's detach must wait for an
    // attach that is still running there (its caller timed out), or the
    // attach lands after the detach and leaves a disk no record knows of.
    AttachDisk: async (i) => {
      v.volumeId(i.volumeId);
      const vmId = v.vmId(i.vmId);
      const [device, mode] = [v.device(i.device), v.attachMode(i.mode)];
      await perVm.run(vmId, () => adapter.attach(vmId, device, mode, (i.source ?? {}) as unknown as DiskSource));
      return { return: true };
    },
    // An adapter whose hypervisor opens iSCSI LUNs itself (option.iscsi =
    // direct: QEMU's iscsi driver) needs no host session: nothing to discover,
    // log in to or out of. The values are still checked.
    // rbd sources: the hypervisor opens the image itself. Discovery only
    // checks that this host can (a host without attach-rbd refuses here,
    // before anything runs); login keeps the key where the hypervisor reads
    // it (a libvirt secret), and logout removes it.
    DiscoverTarget: async (i) => {
      if (rbdOf(adapter, i)) return { return: true };
      const lun = connectionOf(i);
      if (lun && !adapter.iscsiDirect) await initiator.discover(lun);
      return { return: true };
    },
    LoginTarget: async (i) => {
      const rbd = rbdOf(adapter, i);
      if (rbd) {
        await adapter.connectRbd(rbd);
        return { device: rbdTarget(rbd.pool, rbd.image) };
      }
      const lun = connectionOf(i);
      if (!lun) throw new VbsError('InvalidParameterValue', 'Value for parameter source.kind is invalid: only iscsi sources are logged in to.');
      return { device: adapter.iscsiDirect ? iscsiUrl(lun) : await initiator.login(lun) };
    },
    LogoutTarget: async (i) => {
      const rbd = rbdOf(adapter, i);
      if (rbd) {
        await adapter.disconnectRbd(rbd);
        return { return: true };
      }
      const lun = connectionOf(i);
      if (lun && !adapter.iscsiDirect) await initiator.logout(lun);
      return { return: true };
    },
    ListVms: async () => ({ vmId: await adapter.vmIds() }),
    ListDisks: async (i) => {
      const wanted = ((i.vmId ?? []) as unknown[]).map((id) => v.vmId(id));
      const disks = await adapter.listDisks(wanted);
      return { disk: disks.map((d) => ({ vmId: d.vmId, device: d.device, target: d.target, mode: d.mode, ...(d.volumeId ? { volumeId: d.volumeId } : {}) })) };
    },
    ResizeDisk: async (i) => {
      const volumeId = v.volumeId(i.volumeId);
      const [vmId, device] = [v.vmId(i.vmId), v.device(i.device)];
      const sizeBytes = diskBytes(i.sizeBytes);
      const source = i.source === undefined ? undefined : (i.source as unknown as DiskSource);
      // A kernel initiator's block device keeps its old size until the session is rescanned.
      const lun = source?.kind === 'iscsi' ? connectionOf(i) : undefined;
      if (lun && !adapter.iscsiDirect) await initiator.rescan(lun);
      return { outcome: await perVm.run(vmId, () => adapter.resize(vmId, device, volumeId, sizeBytes, source)) };
    },
    DetachDisk: async (i) => {
      const volumeId = v.volumeId(i.volumeId);
      const [vmId, device] = [v.vmId(i.vmId), v.device(i.device)];
      const source = i.source === undefined ? undefined : (i.source as unknown as DiskSource);
      await perVm.run(vmId, () => adapter.detach(vmId, device, volumeId, source));
      return { return: true };
    },
  };
}

export async function startVmmDelegate(cfg: VmmDelegateConfig, log: Logger): Promise<RunningService> {
  const catalog = CommandCatalog.fromFile(cfg.commands ?? DEFAULT_COMMANDS_FILE);
  const name = VmmAdapter.choose(catalog, cfg.adapter);
  // <stateDir> is the adapter's own state folder: the simulator's, or the
  // folder of the VMs' QMP sockets for the qemu adapter.
  const stateDir = name === 'qemu' ? cfg.qmpDir : cfg.simState;
  if (name === 'qemu' && !stateDir) throw new Error('the qemu adapter needs "qmpDir" in the vmm-delegate configuration: the folder of the VMs\' QMP sockets (<qmpDir>/<vmId>.qmp)');
  const fixed = { ...FIXED_PARAMS, ...(stateDir ? { stateDir } : {}) };
  const runner = new CommandRunner(catalog, {
    fixed,
    env: cfg.env,
    onRun: (key, argv) => log.debug('run', { key, argv }),
    // Commands start in a small helper process, off this delegate's event loop (src/commands/helper-client.ts).
    helper: commandHelper(),
  });
  const adapter = new VmmAdapter(name, runner, cfg.volumeRoots);
  log.info('VMM adapter', { adapter: name, host: cfg.hostName });
  const handlers = vmmDelegateHandlers(cfg.hostName, adapter, new IscsiInitiator(name, runner));
  // Checked before any host command: a call older than one already acted on is refused.
  const memory = new GenerationMemory(cfg.generationsFile ?? ':memory:');
  return listenDelegate(cfg, VMM_DELEGATE_SERVICE, guardGenerations(handlers, VMM_GENERATION_RULES, memory), log, () => memory.close());
}
