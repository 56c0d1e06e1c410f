import { VbsError } from '../../core/errors.js';
import type { CommandRunner } from '../../commands/runner.js';
import { CommandFailed } from '../../commands/runner.js';
import { byPathDevice, type IscsiLun } from './iscsi-target.js';

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
 * out and forget it. Patterns: vmm.<adapter>.iscsi.{discover,login,logout,forget}.
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
    const stdout = await this.runner.run(this.key('discover'), { portal: t.portal }).then((r) => r.stdout);
    // Each line: "<ip:port>,<tpgt> <iqn>".
    const found = stdout.split('\n').some((line) => line.trim().split(/\s+/)[1] === t.iqn);
    if (!found) throw new VbsError('OperationFailed', `Discovery at ${t.portal} did not report the target ${t.iqn}.`);
  }

  /** Logs in (an existing session is fine) and returns the LUN's local device. */
  async login(t: IscsiLun): Promise<string> {
    await runAccepting(this.runner, this.key('login'), { portal: t.portal, iqn: t.iqn }, [ISCSI_ERR_SESS_EXISTS]);
    return byPathDevice(t);
  }

  /** Logs out and deletes the node record discovery made; both are fine when already gone. */
  async logout(t: IscsiLun): Promise<void> {
    await runAccepting(this.runner, this.key('logout'), { portal: t.portal, iqn: t.iqn }, [ISCSI_ERR_NO_OBJS_FOUND]);
    await runAccepting(this.runner, this.key('forget'), { portal: t.portal, iqn: t.iqn }, [ISCSI_ERR_NO_OBJS_FOUND]);
  }
}
