import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { QmpClient } from '../../src/qmp/client.js';
import { eventually } from '../e2e/harness.js';

/**
 * Real host components for the system tests: QEMU VMs (paused, no guest, a
 * virtio-scsi controller), libvirt domains, and the daemons behind them.
 * Everything a test starts it stops by PID, and only that.
 */
const run = promisify(execFile);

/** The system tests run real daemons and loop mounts: root only (CI runs them as root). */
export function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new Error('test/system needs root (real QEMU, libvirtd, loop mounts); run it as root, as CI does');
}

/** KVM where the machine has it, else TCG (no /dev/kvm here): QEMU and libvirt must be told which. */
export const HAS_KVM = existsSync('/dev/kvm');

/**
 * libvirt's QEMU runs as libvirt-qemu (group kvm), not root: it can use KVM
 * only when /dev/kvm admits its group. A machine whose /dev/kvm is root's
 * alone (crw------- root root) makes kvm domains fail to start.
 */
export const LIBVIRT_HAS_KVM = HAS_KVM && kvmAdmitsLibvirt();

function kvmAdmitsLibvirt(): boolean {
  const { mode, gid } = statSync('/dev/kvm');
  if ((mode & 0o006) === 0o006) return true;
  const kvm = readFileSync('/etc/group', 'utf8').split('\n').find((l) => l.startsWith('kvm:'));
  return (mode & 0o060) === 0o060 && kvm !== undefined && Number(kvm.split(':')[2]) === gid;
}

export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Sends SIGTERM, then SIGKILL after 10 s, and waits until the process is gone. */
export async function stopPid(pid: number): Promise<void> {
  if (!isRunning(pid)) return;
  process.kill(pid, 'SIGTERM');
  try {
    await eventually(async () => (isRunning(pid) ? undefined : true), 10_000, 50);
  } catch {
    process.kill(pid, 'SIGKILL');
    await eventually(async () => (isRunning(pid) ? undefined : true), 10_000, 50);
  }
}

/** A QEMU VM with no guest, paused (-S), whose QMP monitor is `<qmpDir>/<name>.qmp`. */
export class QemuVm {
  private constructor(
    readonly name: string,
    readonly socket: string,
    readonly pid: number,
  ) {}

  static async start(qmpDir: string, name: string, opts: { scsi?: boolean } = {}): Promise<QemuVm> {
    const socket = join(qmpDir, `${name}.qmp`);
    const pidFile = join(qmpDir, `${name}.pid`);
    await run('qemu-system-x86_64', [
      '-machine', HAS_KVM ? 'accel=kvm' : 'accel=tcg',
      '-S', '-nodefaults', '-nographic', '-m', '64', '-name', name,
      '-qmp', `unix:${socket},server=on,wait=off`,
      '-monitor', 'none', '-serial', 'none', '-display', 'none',
      ...(opts.scsi === false ? [] : ['-device', 'virtio-scsi-pci,id=scsi0']),
      '-pidfile', pidFile, '-daemonize',
    ]);
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    rmSync(pidFile, { force: true });
    return new QemuVm(name, socket, pid);
  }

  async qmp<T>(work: (c: QmpClient) => Promise<T>): Promise<T> {
    const c = await QmpClient.connect(this.socket, 10_000);
    try {
      return await work(c);
    } finally {
      c.close();
    }
  }

  /** The VM's disks as QMP query-block sees them: device id, image and the block layer's ro flag. */
  async disks(): Promise<{ dev: string; file: string; ro: boolean }[]> {
    const blocks = (await this.qmp((c) => c.execute('query-block'))) as { qdev?: string; inserted?: { file: string; ro: boolean } }[];
    return blocks.filter((b) => b.inserted && b.qdev).map((b) => ({ dev: b.qdev!, file: b.inserted!.file, ro: b.inserted!.ro })).sort((a, b) => a.dev.localeCompare(b.dev));
  }

  /**
   * Runs a qemu-io command on the VM's device `dev` (its BlockBackend: what
   * the guest would see). Only errors come back through the monitor
   * (`Block node is read-only`); what a read prints goes to QEMU's stdout.
   */
  async qemuIo(dev: string, command: string): Promise<string> {
    return (await this.qmp((c) => c.execute('human-monitor-command', { 'command-line': `qemu-io -d ${dev} "${command}"` }))) as string;
  }

  /** The first `length` bytes the VM's disk `dev` serves (its block node, exported read-only over NBD). */
  async read(dev: string, nbdDir: string, length = 512): Promise<Buffer> {
    return this.qmp((c) => readThroughNbd((cmd, args) => c.execute(cmd, args), dev, nbdDir, length));
  }

  async stop(): Promise<void> {
    await stopPid(this.pid);
    rmSync(this.socket, { force: true });
  }
}

type Execute = (command: string, args?: Record<string, unknown>) => Promise<unknown>;

/**
 * Reads what a VM's disk serves: QEMU exports the device's block node over
 * NBD on a unix socket (read-only), and qemu-io reads it from there. Works
 * for any node QEMU opened, a file or an iSCSI LUN through its own driver.
 */
export async function readThroughNbd(execute: Execute, dev: string, nbdDir: string, length: number): Promise<Buffer> {
  const blocks = (await execute('query-block')) as { qdev?: string; inserted?: { 'node-name'?: string } }[];
  const node = blocks.find((b) => b.qdev === dev)?.inserted?.['node-name'];
  if (!node) throw new Error(`no disk ${dev} in query-block`);
  const socket = join(nbdDir, 'nbd.sock');
  await execute('nbd-server-start', { addr: { type: 'unix', data: { path: socket } } });
  try {
    await execute('block-export-add', { type: 'nbd', id: 'vbs-test-read', 'node-name': node, writable: false });
    try {
      const out = (await run('qemu-io', ['-r', '-f', 'raw', `nbd+unix:///${node}?socket=${socket}`, '-c', `read -v 0 ${length}`], { timeout: 60_000 })).stdout;
      return bytesOfDump(out);
    } finally {
      await execute('block-export-del', { id: 'vbs-test-read' });
    }
  } finally {
    await execute('nbd-server-stop');
    rmSync(socket, { force: true });
  }
}

/** The bytes qemu-io's `read -v` dumps (`00000000:  56 42 53 ...  VBS...`), as a Buffer. */
export function bytesOfDump(dump: string): Buffer {
  const bytes: number[] = [];
  for (const line of dump.split('\n')) {
    const m = /^[0-9a-f]{8}:\s+((?:[0-9a-f]{2}\s)+)/.exec(line);
    if (m) for (const h of m[1]!.trim().split(/\s+/)) bytes.push(parseInt(h, 16));
  }
  return Buffer.from(bytes);
}

/** A recognisable 512-byte sector: the label, then a byte pattern. */
export function sector(label: string): Buffer {
  const b = Buffer.alloc(512);
  for (let i = 0; i < 512; i++) b[i] = (i * 7 + label.length) & 0xff;
  b.write(label, 0, 'latin1');
  return b;
}

export const VIRSH_ENV = { ...process.env, LIBVIRT_DEFAULT_URI: 'qemu:///system' };

export async function virsh(...args: string[]): Promise<string> {
  return (await run('virsh', args, { env: VIRSH_ENV, timeout: 60_000 })).stdout;
}

const LIBVIRTD_SOCKET = '/run/libvirt/libvirt-sock';
const VIRTLOGD_SOCKET = '/run/libvirt/virtlogd-sock';

/**
 * libvirtd and virtlogd, started here when they do not run (no systemd in
 * CI), with PID files of the test's own; stop() stops only what this started.
 */
export class LibvirtDaemons {
  private constructor(private readonly started: { name: string; pidFile: string }[]) {}

  static async ensure(pidDir: string): Promise<LibvirtDaemons> {
    const started: { name: string; pidFile: string }[] = [];
    const daemons = new LibvirtDaemons(started);
    try {
      for (const [name, socket] of [['virtlogd', VIRTLOGD_SOCKET], ['libvirtd', LIBVIRTD_SOCKET]] as const) {
        if (await answers(name, socket)) continue;
        const pidFile = join(pidDir, `${name}.pid`);
        execFileSync(name, ['-d', '-p', pidFile]);
        started.push({ name, pidFile });
        await eventually(async () => ((await answers(name, socket)) ? true : undefined), 30_000, 100);
      }
    } catch (err) {
      await daemons.stop();
      throw err;
    }
    return daemons;
  }

  async stop(): Promise<void> {
    for (const d of [...this.started].reverse()) {
      if (!existsSync(d.pidFile)) continue;
      await stopPid(Number(readFileSync(d.pidFile, 'utf8').trim()));
    }
    this.started.length = 0;
  }
}

async function answers(name: string, socket: string): Promise<boolean> {
  if (!existsSync(socket)) return false;
  if (name !== 'libvirtd') return true;
  try {
    await run('virsh', ['-c', 'qemu:///system', 'uri'], { timeout: 30_000 });
    return true;
  } catch {
    return false;
  }
}

/** A libvirt domain with no guest, started paused: type qemu (TCG) without /dev/kvm, kvm with it. */
export class LibvirtDomain {
  private constructor(readonly name: string) {}

  static async start(name: string): Promise<LibvirtDomain> {
    const xml = `<domain type='${LIBVIRT_HAS_KVM ? 'kvm' : 'qemu'}'>
  <name>${name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <features><acpi/></features>
  <devices>
    <controller type='scsi' index='0' model='virtio-scsi'/>
    <memballoon model='none'/>
  </devices>
</domain>
`;
    const dir = mkdtempSync(join(tmpdir(), 'vbs-dom-'));
    try {
      writeFileSync(join(dir, 'dom.xml'), xml);
      await virsh('define', join(dir, 'dom.xml'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const dom = new LibvirtDomain(name);
    try {
      await virsh('start', name, '--paused');
    } catch (err) {
      await dom.remove();
      throw err;
    }
    return dom;
  }

  async xml(): Promise<string> {
    return virsh('dumpxml', this.name);
  }

  /** `virsh domblklist --details`: type, device, target, source of each disk. */
  async blklist(): Promise<{ type: string; device: string; target: string; source: string }[]> {
    return (await virsh('domblklist', this.name, '--details'))
      .split('\n')
      .slice(2)
      .map((l) => l.trim().split(/\s+/))
      .filter((w) => w.length === 4)
      .map(([type, device, target, source]) => ({ type: type!, device: device!, target: target!, source: source! }));
  }

  /** The QEMU device alias libvirt gave the disk on `target` (sdb → scsi0-0-0-1). */
  async aliasOf(target: string): Promise<string> {
    const disk = (await this.xml()).split('<disk ').find((d) => d.includes(`<target dev='${target}'`));
    const alias = disk && /<alias name='([^']+)'\/>/.exec(disk)?.[1];
    if (!alias) throw new Error(`${this.name} has no disk ${target}`);
    return alias;
  }

  async qemuIo(target: string, command: string): Promise<string> {
    return virsh('qemu-monitor-command', this.name, '--hmp', `qemu-io -d ${await this.aliasOf(target)} "${command}"`);
  }

  /** A QMP command through libvirt (`virsh qemu-monitor-command`). */
  async execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    const out = await virsh('qemu-monitor-command', this.name, JSON.stringify(args ? { execute: command, arguments: args } : { execute: command }));
    return (JSON.parse(out) as { return: unknown }).return;
  }

  /** The first `length` bytes the domain's disk `target` serves. nbdDir must be writable by QEMU's user. */
  async read(target: string, nbdDir: string, length = 512): Promise<Buffer> {
    return readThroughNbd((c, a) => this.execute(c, a), await this.aliasOf(target), nbdDir, length);
  }

  async remove(): Promise<void> {
    await virsh('destroy', this.name).catch(() => undefined);
    await virsh('undefine', this.name).catch(() => undefined);
  }
}
