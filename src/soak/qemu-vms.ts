import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

/**
 * The VMs of an rbd soak. rbd volumes attach through QEMU's own rbd driver,
 * which the simulated hypervisor does not have, so the soak runs real QEMU
 * VMs (`vbs up --vmm qemu --qmp-dir DIR`): paused, no guest, a virtio-scsi
 * bus, TCG unless /dev/kvm is there. Each is the soak's own process, ended by
 * its PID when the soak ends (never by name).
 */
export class SoakVms {
  private constructor(
    readonly qmpDir: string,
    private readonly pids: number[],
  ) {}

  static start(qmpDir: string, names: readonly string[]): SoakVms {
    mkdirSync(qmpDir, { recursive: true });
    const vms = new SoakVms(qmpDir, []);
    try {
      for (const name of names) {
        const pidFile = join(qmpDir, `${name}.pid`);
        execFileSync('qemu-system-x86_64', [
          '-machine', existsSync('/dev/kvm') ? 'accel=kvm' : 'accel=tcg',
          '-S', '-nodefaults', '-nographic', '-m', '64', '-name', name,
          '-qmp', `unix:${join(qmpDir, `${name}.qmp`)},server=on,wait=off`,
          '-monitor', 'none', '-serial', 'none', '-display', 'none',
          '-device', 'virtio-scsi-pci,id=scsi0', '-pidfile', pidFile, '-daemonize',
        ], { timeout: 60_000, stdio: ['ignore', 'ignore', 'pipe'] });
        vms.pids.push(Number(readFileSync(pidFile, 'utf8').trim()));
        rmSync(pidFile, { force: true });
      }
    } catch (err) {
      void vms.stop();
      throw err;
    }
    return vms;
  }

  /** SIGTERM each VM, SIGKILL one that lingers past 10 s; waits (bounded) until they are gone. */
  async stop(): Promise<void> {
    for (const pid of this.pids.splice(0)) {
      if (!alive(pid)) continue;
      process.kill(pid, 'SIGTERM');
      for (let i = 0; alive(pid) && i < 200; i++) {
        if (i === 100) process.kill(pid, 'SIGKILL');
        await delay(100);
      }
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
