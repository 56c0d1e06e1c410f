import { VbsError, errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { VOLUME_ID } from '../../core/ids.js';
import type { ExportEntry } from './backend.js';
import type { ExportRegistry } from './export-registry.js';
import { ACL_ALL, type TargetInfo, type TargetTool } from './iscsi-targets.js';
import { hostInitiatorName } from '../../core/initiator-name.js';
import { chapUserName, newChapSecret } from '../../core/chap.js';
import { Mutex } from '../../core/mutex.js';
import { runVerified } from '../../commands/verified.js';

/** The LUN a volume is on inside its target (tgt keeps LUN 0 for its controller). */
export const VOLUME_LUN = 1;

export interface IscsiExportsOptions {
  iqnPrefix: string;
  portal: string;
  tool: TargetTool;
  registry: ExportRegistry;
  /** The device or file the LUN serves, for a volume that exists. */
  devicePath: (volumeId: string) => Promise<string>;
  log?: Pick<Logger, 'warn'>;
}

/**
 * One iSCSI target per volume, named `<iqnPrefix>:<volumeId>`. Every change
 * runs under one mutex and starts from the daemon's own listing, so target
 * ids never collide.
 *
 * Export and unexport are "ensure" operations: each looks at the listing and
 * runs only the steps still missing (new target, LUN, bind; or unbind, LUN
 * removal, target removal), so calling one again finishes what a failure or
 * a crash left half-done. A step whose command fails or times out is checked
 * against the listing before it counts as failed. An export that fails
 * withdraws the target unless some host already uses it: no half-made target
 * stays behind.
 *
 * Fencing (tgt): a target admits only the initiator names of the hosts it is
 * exported to (src/core/initiator-name.ts). Unexporting a host takes its name
 * off the ACL and ends its open connections, then looks again: it returns
 * only once the listing shows the host can neither log in nor still be
 * connected. IET's ietadm has no ACL: its targets admit anyone who reaches
 * the portal, and only withdrawing the whole target keeps a host out.
 *
 * CHAP (tgt): each host's export also has an account on the target
 * (src/core/chap.ts), so a login must come from an admitted initiator name
 * AND prove that export's secret. The first export to a host sets the secret
 * the front proposed; later ones (another VM of that host, a re-export, a
 * restore after tgtd restarted) keep the one already in use, since the host
 * may be logged in with it. The answer names the account and its secret, for
 * the front to give that host's VMM delegate only. Unexporting a host
 * deletes its account; a login with it is refused from then on.
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

  /**
   * The export answer names the initiator the target admits for the host
   * when the tool fences (tgt): the VMM host logs in as that name, and the
   * front knows a forced detach can keep the host out.
   */
  export(volumeId: string, vmmHost: string, proposedSecret?: string): Promise<IscsiExport> {
    return this.lock.run(async () => {
      const iqn = this.iqnOf(volumeId);
      const initiator = hostInitiatorName(vmmHost);
      let chap: { chapUser: string; chapSecret: string } | undefined;
      try {
        const tid = await this.ensureTarget(volumeId, iqn, initiator);
        if (this.o.tool.chap) chap = await this.ensureAccount(volumeId, vmmHost, tid, iqn, proposedSecret);
      } catch (err) {
        if (this.o.registry.hostsOf(volumeId).length === 0) {
          await this.withdrawQuietly(iqn);
          this.o.registry.forgetSecrets(volumeId);
        }
        throw err;
      }
      this.o.registry.add(volumeId, vmmHost);
      return { kind: 'iscsi' as const, portal: this.o.portal, iqn, lun: VOLUME_LUN, ...(this.o.tool.fences ? { initiator } : {}), ...chap };
    });
  }

  /**
   * Makes the host's account whole: present with the secret in use, and bound
   * to the target. A daemon's account whose secret we do not know (our record
   * lost) is made again with the proposed one. The secret is recorded before
   * the account is made, so a crash between the two leaves a known secret.
   */
  private async ensureAccount(volumeId: string, vmmHost: string, tid: number, iqn: string, proposed: string | undefined): Promise<{ chapUser: string; chapSecret: string }> {
    const user = chapUserName(volumeId, vmmHost);
    const known = this.o.registry.secretOf(volumeId, vmmHost);
    const hasAccount = async () => (await this.o.tool.listAccounts()).includes(user);
    let present = await hasAccount();
    if (present && known === undefined) {
      await this.deleteAccount(iqn, user);
      present = false;
    }
    const secret = known ?? proposed ?? newChapSecret();
    this.o.registry.setSecret(volumeId, vmmHost, secret);
    if (!present) await this.step(`make the account of ${vmmHost} on ${iqn}`, () => this.o.tool.newAccount(user, secret), hasAccount);
    if (!(await this.find(iqn))?.accounts.includes(user)) {
      await this.step(`bind the account of ${vmmHost} to ${iqn}`, () => this.o.tool.bindAccount(tid, user), async () => (await this.find(iqn))?.accounts.includes(user) ?? false);
    }
    return { chapUser: user, chapSecret: secret };
  }

  /** Deletes the host's account (which unbinds it everywhere); true once the daemon no longer lists it. */
  private async dropAccount(volumeId: string, vmmHost: string): Promise<boolean> {
    if (!this.o.tool.chap) return true;
    const user = chapUserName(volumeId, vmmHost);
    await this.deleteAccount(this.iqnOf(volumeId), user);
    this.o.registry.setSecret(volumeId, vmmHost, undefined);
    return !(await this.o.tool.listAccounts()).includes(user);
  }

  /**
   * Deletes an account that may be bound to the target `iqn`. tgt 1.0.x
   * keeps a target's accounts in an array it reads up to their count:
   * unbinding one that is not the last leaves a hole, after which logins
   * with the accounts past it fail and `tgtadm --op show` crashes tgtd. So
   * the accounts bound after it step aside first (last first, each then the
   * last), it goes, and they are bound again: the array stays whole at every
   * step. Meanwhile new logins of those hosts wait; open sessions go on.
   */
  private async deleteAccount(iqn: string, user: string): Promise<void> {
    const hasAccount = async () => (await this.o.tool.listAccounts()).includes(user);
    if (!(await hasAccount())) return;
    const t = await this.find(iqn);
    const bound = t?.accounts ?? [];
    const after = bound.includes(user) ? bound.slice(bound.indexOf(user) + 1) : [];
    const boundNow = async (other: string) => (await this.find(iqn))?.accounts.includes(other) ?? false;
    for (const other of [...after].reverse()) {
      await this.step(`step account ${other} aside on ${iqn}`, () => this.o.tool.unbindAccount(t!.tid, other), async () => !(await boundNow(other)));
    }
    await this.step(`delete account ${user}`, () => this.o.tool.deleteAccount(user), async () => !(await hasAccount()));
    for (const other of after) {
      await this.step(`bind account ${other} to ${iqn} again`, () => this.o.tool.bindAccount(t!.tid, other), () => boundNow(other));
    }
  }

  /** Makes the volume's target whole: present, with its LUN, admitting the host's initiator (and no longer everyone). Returns its tid. */
  private async ensureTarget(volumeId: string, iqn: string, initiator: string): Promise<number> {
    const targets = await this.o.tool.list();
    let found = targets.find((t) => t.iqn === iqn);
    if (!found) {
      const tid = lowestFreeTid(targets);
      await this.step(`add target ${iqn}`, () => this.o.tool.addTarget(tid, iqn), async () => (found = await this.find(iqn)) !== undefined);
    }
    const target: TargetInfo = found ?? { tid: lowestFreeTid(targets), iqn, luns: [], acl: [], sessions: [], accounts: [] };
    const tid = target.tid;
    if (!target.luns.some((l) => l.lun === VOLUME_LUN)) {
      const device = await this.o.devicePath(volumeId);
      await this.step(`add LUN of ${iqn}`, () => this.o.tool.addLun(tid, VOLUME_LUN, device), async () => hasLun(await this.find(iqn)));
    }
    if (!this.o.tool.fences) return tid;
    if (!target.acl.includes(initiator)) {
      await this.step(`admit ${initiator} to ${iqn}`, () => this.o.tool.admit(tid, initiator), async () => (await this.find(iqn))?.acl.includes(initiator) ?? false);
    }
    // A target made before fencing admitted everyone.
    if (target.acl.includes(ACL_ALL)) {
      await this.step(`stop admitting everyone to ${iqn}`, () => this.o.tool.deny(tid, ACL_ALL), async () => !((await this.find(iqn))?.acl.includes(ACL_ALL) ?? true));
    }
    return tid;
  }

  /**
   * A grown volume's target serves its new size (ModifyVolume). tgtd and IET
   * read a LUN's size only when the LUN is added (`tgtadm --op update` does
   * not re-read it: checked on tgt 1.0.85), so a LUN seen serving less, or
   * whose size the listing does not say, is removed and added again on the
   * same device; initiators see the new capacity at their next READ CAPACITY.
   * No target: nothing is exported, nothing to do. tgtd refuses to remove a
   * LUN with commands in flight: the step fails, and the grow is retried.
   */
  refreshSize(volumeId: string, bytes: number): Promise<void> {
    return this.lock.run(async () => {
      const iqn = this.iqnOf(volumeId);
      const target = await this.find(iqn);
      const lun = target?.luns.find((l) => l.lun === VOLUME_LUN);
      if (!target || !lun) return;
      if (lun.sizeMB !== undefined && lun.sizeMB >= Math.floor(bytes / 1e6)) return;
      const device = await this.o.devicePath(volumeId);
      await this.step(`remove LUN of ${iqn} to serve its new size`, () => this.o.tool.removeLun(target.tid, VOLUME_LUN), async () => !hasLun(await this.find(iqn)));
      await this.step(`add LUN of ${iqn} at its new size`, () => this.o.tool.addLun(target.tid, VOLUME_LUN, device), async () => hasLun(await this.find(iqn)));
    });
  }

  private async find(iqn: string): Promise<TargetInfo | undefined> {
    return (await this.o.tool.list()).find((t) => t.iqn === iqn);
  }

  private step(what: string, run: () => Promise<void>, isDone: () => Promise<boolean>): Promise<void> {
    return runVerified(what, run, isDone, this.o.log);
  }

  /**
   * Puts back the targets hosts still use that the daemon no longer has: tgtd
   * and IET keep targets in memory only, so a restart of the daemon or the
   * node loses them while VMs stay logged in and waiting to reconnect.
   */
  async restore(log: Logger): Promise<number> {
    let restored = 0;
    for (const [volumeId, hosts] of this.o.registry.entries()) {
      if (!hosts.length) continue;
      try {
        const present = (await this.lock.run(() => this.o.tool.list())).some((t) => t.iqn === this.iqnOf(volumeId));
        if (present) continue;
        // Every host it was exported to: the ACL admits each of them again.
        for (const host of hosts) await this.export(volumeId, host);
        restored++;
        log.info('restored the target of an exported volume', { volumeId, hosts });
      } catch (err) {
        // Reported by the front's consistency check (missing-export), which can re-export it.
        log.warn('could not restore the target of an exported volume', { volumeId, message: errorMessage(err) });
      }
    }
    return restored;
  }

  /**
   * Forgets the host; withdraws the target when no other host still uses it,
   * else keeps the host out of it (tgt). Either way, on success the host can
   * no longer reach the volume through this target (with IET, only once the
   * target is withdrawn). Returns whether the host was verified fenced.
   */
  unexport(volumeId: string, vmmHost: string): Promise<boolean> {
    return this.lock.run(async () => {
      const iqn = this.iqnOf(volumeId);
      let fenced: boolean;
      if (this.o.registry.othersThan(volumeId, vmmHost).length === 0) {
        await this.withdraw(iqn);
        fenced = (await this.find(iqn)) === undefined;
        this.o.registry.forgetSecrets(volumeId);
      } else {
        const offAcl = await this.fence(iqn, hostInitiatorName(vmmHost));
        fenced = (await this.dropAccount(volumeId, vmmHost)) && offAcl;
      }
      this.o.registry.remove(volumeId, vmmHost);
      return fenced;
    });
  }

  /** Takes one initiator off a target's ACL and ends its connections; true once the listing shows both done. */
  private async fence(iqn: string, initiator: string): Promise<boolean> {
    if (!this.o.tool.fences) return false;
    const t = await this.find(iqn);
    if (!t) return true;
    if (t.acl.includes(initiator)) {
      await this.step(`deny ${initiator} on ${iqn}`, () => this.o.tool.deny(t.tid, initiator), async () => !((await this.find(iqn))?.acl.includes(initiator) ?? false));
    }
    await this.dropSessions(t, initiator);
    const after = await this.find(iqn);
    return !after || (!after.acl.includes(initiator) && !after.acl.includes(ACL_ALL) && !after.sessions.some((s) => s.initiator === initiator));
  }

  private async dropSessions(t: TargetInfo, initiator?: string): Promise<void> {
    const still = async (sid: number, cid: number) => (await this.find(t.iqn))?.sessions.some((s) => s.sid === sid && s.cids.includes(cid)) ?? false;
    for (const s of t.sessions.filter((x) => initiator === undefined || x.initiator === initiator)) {
      for (const cid of s.cids) {
        await this.step(`drop connection ${s.sid}/${cid} of ${t.iqn}`, () => this.o.tool.dropConnection(t.tid, s.sid, cid), async () => !(await still(s.sid, cid)));
      }
    }
  }

  /** Withdraws the volume's target whoever uses it (the volume is being deleted). */
  withdrawAll(volumeId: string): Promise<void> {
    return this.lock.run(async () => {
      await this.withdraw(this.iqnOf(volumeId));
      this.o.registry.forget(volumeId);
      this.o.registry.forgetSecrets(volumeId);
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

  /** Each step verified against the listing; a failure part-way leaves what a retry of withdraw finishes. */
  private async remove(t: TargetInfo): Promise<void> {
    // Nobody new gets in, and nobody still connected keeps writing (tgt refuses to remove a target with sessions).
    for (const initiator of t.acl) {
      await this.step(`deny ${initiator} on ${t.iqn}`, () => this.o.tool.deny(t.tid, initiator), async () => !((await this.find(t.iqn))?.acl.includes(initiator) ?? false));
    }
    await this.dropSessions(t);
    for (const l of t.luns) {
      await this.step(`remove LUN ${l.lun} of ${t.iqn}`, () => this.o.tool.removeLun(t.tid, l.lun), async () => !(await this.find(t.iqn))?.luns.some((x) => x.lun === l.lun));
    }
    await this.step(`remove target ${t.iqn}`, () => this.o.tool.removeTarget(t.tid), async () => (await this.find(t.iqn)) === undefined);
    // Its hosts' accounts (ours by name: an operator's own accounts bound to it are left alone).
    const volumeId = this.volumeOf(t.iqn);
    const ours = volumeId ? t.accounts.filter((a) => a.startsWith(`${volumeId}.`)) : [];
    const hasAccount = async (user: string) => (await this.o.tool.listAccounts()).includes(user);
    for (const user of ours) {
      if (await hasAccount(user)) await this.step(`delete account ${user}`, () => this.o.tool.deleteAccount(user), async () => !(await hasAccount(user)));
    }
  }

  private async withdrawQuietly(iqn: string): Promise<void> {
    try {
      await this.withdraw(iqn);
    } catch {
      // The export already failed; the caller reports that. A retry finds and finishes the target.
    }
  }
}

/** What ExportVolume answers for an iSCSI export; chapUser and chapSecret when the target requires CHAP. */
export interface IscsiExport {
  kind: 'iscsi';
  portal: string;
  iqn: string;
  lun: number;
  initiator?: string;
  chapUser?: string;
  chapSecret?: string;
}

function hasLun(t: TargetInfo | undefined): boolean {
  return t?.luns.some((l) => l.lun === VOLUME_LUN) ?? false;
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
