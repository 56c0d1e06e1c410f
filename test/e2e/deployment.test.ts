import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { VMM_DELEGATE_SERVICE } from '../../src/services/vmm-delegate.js';
import { VOLUME_DELEGATE_SERVICE } from '../../src/services/volume-delegate.js';
import { SoapClient } from '../../src/soap/client.js';
import { eventually, ROOT, startVbs, VBS_BIN, type Vbs } from './harness.js';

const HOSTSIM = join(ROOT, 'dist', 'sim', 'hostsim.js');
const running: Vbs[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const v of running.splice(0)) await v.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function available(vbs: Vbs, size = 1): Promise<string> {
  const c = vbs.soap();
  const id = String(((await c.call('CreateVolume', { size })).volume as XmlRecord).volumeId);
  await eventually(async () => (((await c.call('DescribeVolumes', { volumeId: [id] })).volume as XmlRecord[])[0]!.status === 'available' ? true : undefined));
  return id;
}

/** Alive and not a zombie (this sandbox's PID 1 may not reap orphans). */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
}

/** The processes whose parent is `pid`, from /proc. */
function childrenOf(pid: number): number[] {
  return readdirSync('/proc')
    .filter((d) => /^[0-9]+$/.test(d))
    .filter((d) => {
      try {
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false;
      }
    })
    .map(Number);
}

function describeProcess(pid: number): string {
  try {
    return `${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ')} | ${readFileSync(`/proc/${pid}/stat`, 'utf8')}`;
  } catch {
    return 'gone';
  }
}

function vmList(stateDir: string): { name: string; disks: { dev: string; mode: string }[] }[] {
  return JSON.parse(execFileSync(process.execPath, [HOSTSIM, '--state', stateDir, 'vm', 'list'], { encoding: 'utf8' }));
}

describe('vbs up', () => {
  it('keeps its state across a restart', async () => {
    const first = await startVbs();
    running.push(first);
    const id = await available(first);
    await first.stop(true);
    running.pop();
    const again = await startVbs([], first.dir);
    running.push(again);
    const r = await again.soap().call('DescribeVolumes', { volumeId: [id] });
    expect((r.volume as XmlRecord[])[0]).toMatchObject({ volumeId: id, status: 'available' });
  });

  it('stops every service process on SIGTERM', async () => {
    const vbs = await startVbs();
    const pids = childrenOf(vbs.process.pid!);
    expect(pids).toHaveLength(4) // front, volume delegate, VMM delegate, instance resolver;
    const exited = new Promise<[number | null, string | null]>((r) => vbs.process.once('exit', (code, signal) => r([code, signal])));
    await vbs.stop();
    expect(await exited).toEqual([0, null]);
    for (const pid of pids) expect(isRunning(pid), `pid ${pid}: ${describeProcess(pid)}`).toBe(false);
  });

  it('leaves no service behind when vbs up itself is killed', async () => {
    const vbs = await startVbs();
    const pids = childrenOf(vbs.process.pid!);
    expect(pids).toHaveLength(4);
    vbs.process.kill('SIGKILL');
    await eventually(async () => (pids.some(isRunning) ? undefined : true), 20_000);
    await vbs.stop();
  });
});

describe('vbs serve', () => {
  it('--commands replaces the configured commands.properties', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vbs-serve-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'vmm.json'), JSON.stringify({ role: 'vmm-delegate', hostName: 'h1', listen: { port: 0 }, tls: { key: 'k', cert: 'c', ca: 'a' } }));
    writeFileSync(join(dir, 'mine.properties'), 'vmm.adapter = hyperv\n');
    const r = spawnSync(process.execPath, [VBS_BIN, 'serve', 'vmm-delegate', '--config', join(dir, 'vmm.json'), '--commands', join(dir, 'mine.properties')], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/mine\.properties lacks vmm\.hyperv\.attach, vmm\.hyperv\.detach/);
  });
});

describe('delegates', () => {
  it('serve the front only: a user certificate from the same CA is refused', async () => {
    const vbs = await startVbs();
    running.push(vbs);
    const front = JSON.parse(readFileSync(join(vbs.dir, 'front.json'), 'utf8')) as { volumeDelegates: { url: string }[]; vmmHosts: { url: string }[] };
    const pki = (f: string) => readFileSync(join(vbs.dir, 'pki', f));
    const tls = { key: pki('admin.key'), cert: pki('admin.crt'), ca: pki('ca.crt') };
    const volume = new SoapClient({ def: VOLUME_DELEGATE_SERVICE, url: front.volumeDelegates[0]!.url, tls });
    const vmm = new SoapClient({ def: VMM_DELEGATE_SERVICE, url: front.vmmHosts[0]!.url, tls });
    await expect(volume.call('DeleteObject', { id: 'vol-00000000000000000' })).rejects.toMatchObject({ code: 'UnauthorizedOperation' });
    await expect(vmm.call('DescribeHost', {})).rejects.toMatchObject({ code: 'UnauthorizedOperation' });
    volume.close();
    vmm.close();
  });
});

describe('moving a VMM host from Xen to Proxmox', () => {
  it('is a change to commands.properties only', async () => {
    // `xm` and `qm` on the delegate's PATH are the host simulator (no Xen or
    // Proxmox here); VBS runs them through the shipped xen and proxmox patterns.
    const bin = mkdtempSync(join(tmpdir(), 'vbs-tools-'));
    dirs.push(bin);
    chmodSync(HOSTSIM, 0o755);
    for (const tool of ['xm', 'qm']) symlinkSync(HOSTSIM, join(bin, tool));
    const data = mkdtempSync(join(tmpdir(), 'vbs-e2e-'));
    const stateDir = join(data, 'vmm-sim');
    mkdirSync(stateDir, { recursive: true });
    for (const vm of ['vm1', '100']) execFileSync(process.execPath, [HOSTSIM, '--state', stateDir, 'vm', 'create', vm]);
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, VBS_SIM_STATE: stateDir };
    const shipped = readFileSync(join(ROOT, 'commands.properties'), 'utf8');
    const props = join(data, 'operator.properties');

    writeFileSync(props, `${shipped}\nvmm.adapter = xen\n`);
    let vbs = await startVbs(['--commands', props], data, env);
    running.push(vbs);
    const vol = await available(vbs);
    await vbs.soap().call('AttachVolume', { volumeId: vol, vmmHost: 'localhost', vmId: 'vm1', device: 'xvdb' });
    expect(vmList(stateDir).find((v) => v.name === 'vm1')!.disks).toEqual([expect.objectContaining({ dev: 'xvdb', mode: 'w' })]);
    await vbs.soap().call('DetachVolume', { volumeId: vol });
    await vbs.stop(true);
    running.pop();

    writeFileSync(props, `${shipped}\nvmm.adapter = proxmox\n`);
    vbs = await startVbs(['--commands', props], data, env);
    running.push(vbs);
    await vbs.soap().call('AttachVolume', { volumeId: vol, vmmHost: 'localhost', vmId: '100', device: 'scsi1', mode: 'r' });
    expect(vmList(stateDir).find((v) => v.name === '100')!.disks).toEqual([expect.objectContaining({ dev: 'scsi1', mode: 'r' })]);
    expect(vmList(stateDir).find((v) => v.name === 'vm1')!.disks).toEqual([]);
  });
});
