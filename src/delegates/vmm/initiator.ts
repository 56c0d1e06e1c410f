import { VbsError } from '../../core/errors.js';
import type { CommandRunner } from '../../commands/runner.js';
import { CommandFailed } from '../../commands/runner.js';
import { runVerified } from '../../commands/verified.js';
import { byPathDevice, chapParams, requireChapDelivery, type IscsiLun } from './iscsi-target.js';

/**
 * open-iscsi's exit codes (include/iscsi_err.h) that mean "already done":
 * idempotence comes from the tool's own answer, not from a look beforehand.
 */
export const ISCSI_ERR_SESS_EXISTS = 15;
export const ISCSI_ERR_NO_OBJS_FOUND = 21;

/** Runs `pattern`, treating the listed exit codes as success. */
async function runAccepting(runner: CommandRunner, key: string, params: Record<string, string | number>, accepted: readonly number[]): Promise<string> {
  try {
    return (await runner.run(key, params)).stdout;
  } catch (e) {
    if (e instanceof CommandFailed && !e.result.timedOut && e.result.exitCode !== undefined && accepted.includes(e.result.exitCode)) return '';
    throw e;
  }
}

/**
 * The iSCSI initiator of a VMM host, as the paper drives it: discover the
 * targets at a portal, log in to one (its LUNs appear as local devices), log
 * out and forget it. Patterns: vmm.<adapter>.iscsi.{discover,login,logout,forget},
 * and optionally vmm.<adapter>.iscsi.sessions (`iscsiadm -m session`) and
 * vmm.<adapter>.iscsi.auth (a CHAP account into the node record, giveAccount).
 *
 * A login or logout that fails or times out has an unknown outcome. With a
 * sessions pattern, the session listing decides (a session there is a login
 * done; none is a logout done); without one, the failure is reported as it
 * is, and the front undoes the step with its idempotent undo. logout is an
 * "ensure": both its commands accept "already done", so calling it again
 * after a failure part-way finishes it.
 */
export class IscsiInitiator {
  constructor(
    private readonly adapter: string,
    private readonly runner: CommandRunner,
  ) {}

  private key(action: string): string {
    const key = `vmm.${this.adapter}.iscsi.${action}`;
    if (!this.runner.catalog.has(key)) throw new VbsError('OperationFailed', `This VMM host cannot reach iSCSI volumes: its commands.properties has no ${key}.`);
    return key;
  }

  /** SendTargets discovery; the target must be among those the portal reports. */
  async discover(t: IscsiLun): Promise<void> {
    // The account too: a discovery that also lists LUNs logs in to each target (the simulator's libiscsi does).
    const stdout = await this.runner.run(this.key('discover'), { portal: t.portal, ...chapParams(t) }).then((r) => r.stdout);
    // Each line: "<ip:port>,<tpgt> <iqn>".
    const found = stdout.split('\n').some((line) => line.trim().split(/\s+/)[1] === t.iqn);
    if (!found) throw new VbsError('OperationFailed', `Discovery at ${t.portal} did not report the target ${t.iqn}.`);
  }

  /** Logs in (an existing session is fine) and returns the LUN's local device. */
  async login(t: IscsiLun): Promise<string> {
    const key = this.key('login');
    await this.giveAccount(t, key);
    await runVerified(
      `login to ${t.iqn}`,
      () => runAccepting(this.runner, key, { portal: t.portal, iqn: t.iqn, ...chapParams(t) }, [ISCSI_ERR_SESS_EXISTS]),
      async () => (await this.hasSession(t)) === true,
    );
    return byPathDevice(t);
  }

  /**
   * A target that requires CHAP: open-iscsi's login sends the account its
   * node record holds, and iscsiadm sets a record only from its command line
   * (-o update -v <secret>), which every local user reads. So the account
   * goes into the record first, by `vmm.<adapter>.iscsi.auth` (the shipped
   * patterns run vbs-iscsi-node-auth, the secret on its standard input); the
   * logout's forget (-o delete) removes the record, and the secret with it.
   * An adapter without an auth pattern must deliver the secret to its login
   * pattern itself (as the simulator's libiscsi once did), or is refused here.
   */
  private async giveAccount(t: IscsiLun, loginKey: string): Promise<void> {
    if (!t.chap) return;
    const authKey = `vmm.${this.adapter}.iscsi.auth`;
    if (!this.runner.catalog.has(authKey)) {
      requireChapDelivery(t, this.runner.catalog.uses(loginKey, 'chapSecret'), loginKey);
      return;
    }
    requireChapDelivery(t, this.runner.catalog.uses(authKey, 'chapSecret'), authKey);
    await this.runner.run(authKey, { portal: t.portal, iqn: t.iqn, ...chapParams(t) });
  }

  /** Logs out and deletes the node record discovery made; both are fine when already gone. */
  async logout(t: IscsiLun): Promise<void> {
    await runVerified(
      `logout from ${t.iqn}`,
      () => runAccepting(this.runner, this.key('logout'), { portal: t.portal, iqn: t.iqn }, [ISCSI_ERR_NO_OBJS_FOUND]),
      async () => (await this.hasSession(t)) === false,
    );
    await runAccepting(this.runner, this.key('forget'), { portal: t.portal, iqn: t.iqn }, [ISCSI_ERR_NO_OBJS_FOUND]);
  }

  /**
   * ModifyVolume: the host re-reads the sizes of the target's LUNs, so the
   * block device a VM was given grows (`vmm.<adapter>.iscsi.rescan`). No
   * pattern: nothing runs (the VM sees the size after a re-attach); no
   * session (exit 21): nothing is logged in to grow.
   */
  async rescan(t: IscsiLun): Promise<void> {
    const key = `vmm.${this.adapter}.iscsi.rescan`;
    if (!this.runner.catalog.has(key)) return;
    await runAccepting(this.runner, key, { portal: t.portal, iqn: t.iqn }, [ISCSI_ERR_NO_OBJS_FOUND]);
  }

  /**
   * Whether this host has a session to the target, from `iscsiadm -m session`
   * ("tcp: [sid] ip:port,tpgt iqn ..."; exit 21 when there is none), or
   * undefined when the adapter has no sessions pattern: unknown.
   */
  private async hasSession(t: IscsiLun): Promise<boolean | undefined> {
    const key = `vmm.${this.adapter}.iscsi.sessions`;
    if (!this.runner.catalog.has(key)) return undefined;
    const stdout = await runAccepting(this.runner, key, {}, [ISCSI_ERR_NO_OBJS_FOUND]);
    return stdout.split('\n').some((line) => {
      const words = line.trim().split(/\s+/);
      return words[2]?.startsWith(`${t.portal},`) === true && words[3] === t.iqn;
    });
  }
}
