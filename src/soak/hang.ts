import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Host commands that hang, through the host simulator's `hang/` fault files
 * (src/sim/faults.ts): the next run of a simulated tool sleeps before doing
 * its work, past the front's call timeout, and then does it anyway: the
 * delegate acts after its caller gave up. Each hang is used once (`.count`).
 */
export const HANG_TOOLS = {
  /** The file back end's volume commands are real (truncate, cp, rm): only the VMM host is simulated. */
  file: ['xm.block-attach', 'xm.block-detach', 'xm.list'],
  'lvm-iscsi': ['xm.block-attach', 'xm.block-detach', 'xm.list', 'lvcreate', 'lvremove', 'lvrename', 'ietadm', 'iscsiadm'],
  /** Real rbd and real QEMU: no simulated tool to hang (the proxies still cut and stall calls). */
  rbd: [],
} as const;

export class HostHangs {
  constructor(private readonly simState: string) {}

  /** The next run of `key` (`tool` or `tool.verb`) sleeps `ms` first; one at a time per key. */
  hangNext(key: string, ms: number): void {
    const dir = join(this.simState, 'hang');
    mkdirSync(dir, { recursive: true });
    // The count first: the fault file alone would hang every run.
    writeFileSync(join(dir, `${key}.count`), '1\n');
    writeFileSync(join(dir, key), `${ms / 1000}\n`);
  }

  /** Removes every hang file: nothing hangs while the soak settles. */
  clear(): void {
    const dir = join(this.simState, 'hang');
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const n of names) rmSync(join(dir, n), { force: true });
  }
}
