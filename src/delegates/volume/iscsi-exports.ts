import { VbsError, errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { VOLUME_ID } from '../../core/ids.js';
import type { ExportEntry } from './backend.js';
import type { ExportRegistry } from './export-registry.js';
import type { TargetInfo, TargetTool } from './iscsi-targets.js';
import { Mutex } from '../../core/mutex.js';

/** The LUN a volume is on inside its target (tgt keeps LUN 0 for its controller). */
export const VOLUME_LUN = 1;

export interface IscsiExportsOptions {
  iqnPrefix: string;
  portal: string;
  tool: TargetTool;
  registry: ExportRegistry;
  /** The device or file the LUN serves, for a volume that exists. */
  devicePath: (volumeId: string) => Promise<string>;
}

/**
 * One iSCSI target per volume, named `<iqnPrefix>:<volumeId>`. Every change
 * runs under one mutex and starts from the daemon's own listing, so target
 * ids never collide and each step is skipped when it is already done: export
 * and unexport are idempotent and finish what a crash left half-done.
 */
export class IscsiExports {
  private readonly lock = new Mutex();

  constructor(private readonly o: IscsiExportsOptions) {}

  iqnOf(volumeId: string): string {
    return `${this.o.iqnPrefix}:${volumeId}`;
  }

  /** The volume a target of ours serves, or undefined for someone else's target. */
  volumeOf(iqn: string): string | undefined {
    const prefix = `${this.o.iqnPrefix}:`;
    const id = iqn.startsWith(prefix) ? iqn.slice(prefix.length) : '';
    return VOLUME_ID.test(id) ? id : undefined;
  }

  export(volumeId: string, vmmHost: string): Promise<{ kind: 'iscsi'; portal: string; iqn: string; lun: number }> {
    return this.lock.run(async () => {
      const iqn = this.iqnOf(volumeId);
      const targets = await this.o.tool.list();
      let target = targets.find((t) => t.iqn === iqn);
      const created = !target;
      if (!target) {
        const tid = lowestFreeTid(targets);
        await this.o.tool.addTarget(tid, iqn);
        target = { tid, iqn, luns: [], open: false };
      }
      try {
        if (!target.luns.some((l) => l.lun === VOLUME_LUN)) await this.o.tool.addLun(target.tid, VOLUME_LUN, await this.o.devicePath(volumeId));
        if (!target.open) await this.o.tool.open(target.tid);
      } catch (err) {
        if (created) await this.withdrawQuietly(iqn);
        throw err;
      }
      this.o.registry.add(volumeId, vmmHost);
      return { kind: 'iscsi' as const, portal: this.o.portal, iqn, lun: VOLUME_LUN };
    });
  }

  /**
   * Puts back the targets hosts still use that the daemon no longer has: tgtd
   * and IET keep targets in memory only, so a restart of the daemon or the
   * node loses them while VMs stay logged in and waiting to reconnect.
   */
  async restore(log: Logger): Promise<number> {
    let restored = 0;
    for (const [volumeId, hosts] of this.o.registry.entries()) {
      const host = hosts[0];
      if (!host) continue;
      try {
        const present = (await this.lock.run(() => this.o.tool.list())).some((t) => t.iqn === this.iqnOf(volumeId));
        if (present) continue;
        await this.export(volumeId, host);
        restored++;
        log.info('restored the target of an exported volume', { volumeId, hosts });
      } catch (err) {
        // Reported by the front's consistency check (missing-export), which can re-export it.
        log.warn('could not restore the target of an exported volume', { volumeId, message: errorMessage(err) });
      }
    }
    return restored;
  }

  /** Forgets the host; withdraws the target when no other host still uses it. */
  unexport(volumeId: string, vmmHost: string): Promise<void> {
    return this.lock.run(async () => {
      if (this.o.registry.othersThan(volumeId, vmmHost).length === 0) await this.withdraw(this.iqnOf(volumeId));
      this.o.registry.remove(volumeId, vmmHost);
    });
  }

  /** Withdraws the volume's target whoever uses it (the volume is being deleted). */
  withdrawAll(volumeId: string): Promise<void> {
    return this.lock.run(async () => {
      await this.withdraw(this.iqnOf(volumeId));
      this.o.registry.forget(volumeId);
    });
  }

  list(): Promise<ExportEntry[]> {
    return this.lock.run(async () => {
      const out: ExportEntry[] = [];
      for (const t of await this.o.tool.list()) {
        const volumeId = this.volumeOf(t.iqn);
        if (!volumeId) continue;
        const base = { volumeId, kind: 'iscsi' as const, iqn: t.iqn, tid: t.tid, lun: t.luns[0]?.lun ?? VOLUME_LUN };
        const hosts = this.o.registry.hostsOf(volumeId);
        if (hosts.length === 0) out.push(base);
        for (const vmmHost of hosts) out.push({ ...base, vmmHost });
      }
      return out.sort((a, b) => (a.tid ?? 0) - (b.tid ?? 0) || (a.vmmHost ?? '').localeCompare(b.vmmHost ?? ''));
    });
  }

  private async withdraw(iqn: string): Promise<void> {
    const target = (await this.o.tool.list()).find((t) => t.iqn === iqn);
    if (target) await this.remove(target);
  }

  private async remove(t: TargetInfo): Promise<void> {
    if (t.open && this.o.tool.kind === 'tgt') await this.o.tool.close(t.tid);
    for (const l of t.luns) await this.o.tool.removeLun(t.tid, l.lun);
    await this.o.tool.removeTarget(t.tid);
  }

  private async withdrawQuietly(iqn: string): Promise<void> {
    try {
      await this.withdraw(iqn);
    } catch {
      // The export already failed; the caller reports that. A retry finds and finishes the target.
    }
  }
}

/** Target ids start at 1 (0 means "all" to both tools). */
export function lowestFreeTid(targets: readonly TargetInfo[]): number {
  const used = new Set(targets.map((t) => t.tid));
  let tid = 1;
  while (used.has(tid)) tid++;
  return tid;
}

/** Thrown by callers that need the volume before exporting it. */
export function volumeNotFound(volumeId: string): VbsError {
  return new VbsError('InvalidVolume.NotFound', `The volume '${volumeId}' has no data on this volume delegate.`);
}
