import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkPlaceholder } from '../../commands/placeholders.js';
import { CommandFailed, type CommandRunner } from '../../commands/runner.js';

/**
 * libvirt secrets for the CHAP account of an iSCSI network disk
 * (`<disk type='network'><source protocol='iscsi'>`): QEMU logs in itself,
 * and libvirt gives it the password from a secret object the disk's
 * `<auth><secret type='iscsi' usage=.../></auth>` names. Patterns:
 *
 *   vmm.<adapter>.secret-define    virsh secret-define <path>      (the secret's XML: no value)
 *   vmm.<adapter>.secret-set       virsh secret-set-value <secretId> --file <path> --plain
 *                                  <path>: a private file holding the password (0600 in a
 *                                  0700 folder, removed as soon as virsh has read it). virsh
 *                                  has no way to read it from standard input: `--file
 *                                  /dev/stdin` fails on the socket Node gives a child as its
 *                                  stdin, `--interactive` wants a terminal, `--base64` is argv.
 *                                  A pattern that delivers <chapSecret> (.stdin, .env.VAR)
 *                                  instead is given it that way.
 *   vmm.<adapter>.secret-undefine  virsh secret-undefine <secretId>
 *
 * One secret per VM disk (the VM and its device name it, so two VMs of one
 * host attaching the same volume never share, or remove, each other's), made
 * `ephemeral` (libvirt never writes it to disk) and `private` (no API reads it
 * back). It is undefined when the disk is detached, or its attach refused.
 * QEMU keeps the password it was given for the disk's life; the secret is
 * not needed after the hot-plug, and is kept only so that it goes at detach.
 */
export interface DiskSecret {
  /** A UUID derived from the VM and device, so a detach finds it without state. */
  readonly uuid: string;
  /** The usage name the disk XML refers to. */
  readonly usage: string;
}

export function diskSecret(vmId: string, vmDev: string): DiskSecret {
  // Both go into XML and a usage name: only the characters their checks admit.
  checkPlaceholder('vmId', vmId);
  checkPlaceholder('vmDev', vmDev);
  const h = createHash('sha256').update(`vbs-chap-secret\0${vmId}\0${vmDev}`).digest('hex');
  // RFC 4122 layout, version 8 (custom), variant 10xx.
  const uuid = `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${((parseInt(h.slice(16, 17), 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
  return { uuid, usage: `vbs/${vmId}/${vmDev}` };
}

/** The secret's definition: no value in it (secret-set gives that), never stored on disk by libvirt. */
export function secretXml(s: DiskSecret, vmId: string, vmDev: string): string {
  return [
    `<secret ephemeral='yes' private='yes'>`,
    `  <uuid>${s.uuid}</uuid>`,
    `  <description>VBS: CHAP account of the iSCSI disk ${vmDev} of ${vmId}</description>`,
    `  <usage type='iscsi'><target>${s.usage}</target></usage>`,
    `</secret>`,
    '',
  ].join('\n');
}

/** Writes `text` to a private temporary file for the command that reads it, and removes it after. */
export async function withPrivateFile<T>(name: string, text: string, run: (path: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'vbs-disk-'));
  try {
    const path = join(dir, name);
    writeFileSync(path, text, { mode: 0o600 });
    return await run(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// virsh's words when the secret is not there: it was never made, or is gone already.
const NO_SECRET = /Secret not found|no secret with matching (?:uuid|usage)/i;

export class LibvirtSecrets {
  constructor(
    private readonly adapter: string,
    private readonly runner: CommandRunner,
  ) {}

  private key(action: string): string {
    return `vmm.${this.adapter}.${action}`;
  }

  /** Whether this adapter's patterns can make and remove disk secrets (secret-set taking the password from a file or a delivery). */
  get available(): boolean {
    if (!['secret-define', 'secret-set', 'secret-undefine'].every((a) => this.runner.catalog.has(this.key(a)))) return false;
    return this.delivers || this.runner.catalog.uses(this.key('secret-set'), 'path');
  }

  /** secret-set takes <chapSecret> by delivery (stdin, env) rather than from a file. */
  private get delivers(): boolean {
    return this.runner.catalog.uses(this.key('secret-set'), 'chapSecret');
  }

  /** Defines the disk's secret and sets its value (both idempotent: the same UUID and usage again replace it). */
  async define(vmId: string, vmDev: string, chap: { user: string; secret: string }): Promise<DiskSecret> {
    const s = diskSecret(vmId, vmDev);
    await withPrivateFile('secret.xml', secretXml(s, vmId, vmDev), (path) => this.runner.run(this.key('secret-define'), { path }));
    const set = this.key('secret-set');
    if (this.delivers) await this.runner.run(set, { secretId: s.uuid, chapUser: chap.user, chapSecret: chap.secret });
    else await withPrivateFile('password', chap.secret, (path) => this.runner.run(set, { secretId: s.uuid, path }));
    return s;
  }

  /** Undefines the disk's secret; one that is not there is done already. */
  async undefine(vmId: string, vmDev: string): Promise<void> {
    if (!this.available) return;
    try {
      await this.runner.run(this.key('secret-undefine'), { secretId: diskSecret(vmId, vmDev).uuid });
    } catch (e) {
      if (e instanceof CommandFailed && !e.result.timedOut && NO_SECRET.test(e.result.stderr)) return;
      throw e;
    }
  }
}
