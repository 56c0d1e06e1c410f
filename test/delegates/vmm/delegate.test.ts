import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PkiStore } from '../../../src/pki/store.js';
import { VMM_DELEGATE_SERVICE } from '../../../src/services/vmm-delegate.js';
import { SoapClient } from '../../../src/soap/client.js';
import type { Record as XmlRecord } from '../../../src/soap/xml.js';
import { startTgtd, type RealTarget } from '../../sim/real-target.js';

/**
 * The VMM Delegate as a real process (`vbs serve vmm-delegate`) driven
 * through its SOAP interface with the front's certificate, on the sim
 * adapter: the simulator's xm and iscsiadm, which reach simulated targets and
 * a real tgtd.
 */
const ROOT = resolve(import.meta.dirname, '../../..');
const HOSTSIM = join(ROOT, 'dist', 'sim', 'hostsim.js');
const VBS = join(ROOT, 'bin', 'vbs.js');
const PORTAL = '127.0.0.1:3260';
const VOL_A = 'vol-0000000000000000a';
const VOL_B = 'vol-0000000000000000b';
const VOL_C = 'vol-0000000000000000c';
const iqnOf = (vol: string) => `iqn.2010-10.org.example:${vol}`;
const byPath = (portal: string, vol: string, lun = 1) => `/dev/disk/by-path/ip-${portal}-iscsi-${iqnOf(vol)}-lun-${lun}`;

let dir: string;
let simState: string;
let volumes: string;
let delegate: ChildProcess;
let client: SoapClient;

function sim(...args: string[]): { code: number; stdout: string } {
  try {
    return { code: 0, stdout: execFileSync(process.execPath, [HOSTSIM, '--state', simState, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) };
  } catch (e) {
    const err = e as { status: number; stdout: string };
    return { code: err.status, stdout: err.stdout };
  }
}

function lunFile(name: string, size = 4 * 1024 * 1024): string {
  const p = join(dir, 'luns', name);
  writeFileSync(p, '');
  truncateSync(p, size);
  return p;
}

/** Makes every iscsiadm invocation fail: a fault that is not this proves no command ran. */
function failEveryIscsiadm(): () => void {
  const file = join(simState, 'fail', 'iscsiadm');
  mkdirSync(join(simState, 'fail'), { recursive: true });
  writeFileSync(file, 'iscsiadm: should not have run\n');
  return () => unlinkSync(file);
}

function fault(name: string, exit: number): () => void {
  const file = join(simState, 'fail', name);
  mkdirSync(join(simState, 'fail'), { recursive: true });
  writeFileSync(file, `iscsiadm: injected (${exit})\n`);
  writeFileSync(`${file}.exit`, String(exit));
  return () => {
    unlinkSync(file);
    unlinkSync(`${file}.exit`);
  };
}

const source = (portal: string, vol: string, lun = 1) => ({ kind: 'iscsi', portal, iqn: iqnOf(vol), lun });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vbs-vmm-'));
  simState = join(dir, 'sim');
  volumes = join(dir, 'volumes');
  for (const d of [simState, volumes, join(dir, 'luns')]) mkdirSync(d, { recursive: true });
  const pki = new PkiStore(join(dir, 'pki'));
  pki.ensureCa();
  pki.ensureIdentity('front', { commonName: 'vbs-front', use: 'server+client', hosts: ['127.0.0.1'] });
  pki.ensureIdentity('vmm-delegate', { commonName: 'vbs-vmm-delegate', use: 'server', hosts: ['127.0.0.1'] });
  for (const vm of ['vm1', 'vm2', 'vm3']) expect(sim('vm', 'create', vm).code).toBe(0);
  const tls = (n: string) => ({ key: `pki/${n}.key`, cert: `pki/${n}.crt`, ca: 'pki/ca.crt' });
  writeFileSync(
    join(dir, 'vmm.json'),
    JSON.stringify({ role: 'vmm-delegate', hostName: 'h1', listen: { port: 0 }, tls: tls('vmm-delegate'), adapter: 'sim', volumeRoots: ['volumes'], simState: 'sim' }),
  );
  delegate = spawn(process.execPath, [VBS, 'serve', 'vmm-delegate', '--config', join(dir, 'vmm.json')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  delegate.stderr!.on('data', (d) => (stderr += d));
  const url = await new Promise<string>((ok, fail) => {
    createInterface({ input: delegate.stdout! }).on('line', (line) => {
      if (line.startsWith('{"ready"')) ok((JSON.parse(line) as { ready: string }).ready);
    });
    delegate.once('exit', (code) => fail(new Error(`vmm-delegate exited with ${code}: ${stderr}`)));
  });
  const pem = (f: string) => readFileSync(join(dir, 'pki', f));
  client = new SoapClient({ def: VMM_DELEGATE_SERVICE, url, tls: { key: pem('front.key'), cert: pem('front.crt'), ca: pem('ca.crt') } });
});

afterAll(async () => {
  client?.close();
  if (delegate && delegate.exitCode === null && delegate.signalCode === null) {
    const exited = new Promise((r) => delegate.once('exit', r));
    delegate.kill('SIGTERM');
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

const disks = async (...vmId: string[]) => ((await client.call('ListDisks', { vmId })).disk ?? []) as XmlRecord[];
const sessions = () => sim('iscsiadm', '-m', 'session').stdout;
const nodes = () => sim('iscsiadm', '-m', 'node').stdout;

describe('the VMM Delegate over SOAP, on the simulator', () => {
  it('discovers, logs in, attaches, lists, detaches and logs out a simulated target, each step idempotent', async () => {
    expect(sim('iscsi', 'target', 'add', PORTAL, iqnOf(VOL_A), `1=${lunFile('a.img')}`).code).toBe(0);
    const src = source('127.0.0.1', VOL_A);
    const dev = byPath(PORTAL, VOL_A);
    for (let i = 0; i < 2; i++) expect(await client.call('DiscoverTarget', { volumeId: VOL_A, source: src })).toEqual({ return: true });
    expect(nodes()).toBe(`${PORTAL},1 ${iqnOf(VOL_A)}\n`);
    // The second login meets iscsiadm's exit 15 (session exists): done already.
    for (let i = 0; i < 2; i++) expect(await client.call('LoginTarget', { volumeId: VOL_A, source: src })).toEqual({ device: dev });
    expect(sessions()).toBe(`tcp: [1] ${PORTAL},1 ${iqnOf(VOL_A)} (non-flash)\n`);
    for (let i = 0; i < 2; i++) await client.call('AttachDisk', { volumeId: VOL_A, vmId: 'vm1', device: 'xvdb', mode: 'w', source: src });
    expect(await disks('vm1')).toEqual([{ vmId: 'vm1', device: 'xvdb', target: dev, mode: 'w', volumeId: VOL_A }]);
    // ModifyVolume: the session is rescanned (the host's device grows), then Xen's blkback passes the size on by itself.
    expect(sim('iscsiadm', '-m', 'node', '-T', iqnOf(VOL_A), '-p', PORTAL, '--rescan').stdout).toContain(`Rescanning session [sid: 1, target: ${iqnOf(VOL_A)}`);
    const grow = () => client.call('ResizeDisk', { volumeId: VOL_A, vmId: 'vm1', device: 'xvdb', sizeBytes: 1024 ** 3, source: src });
    expect((await grow()).outcome).toBe('automatic');
    const unfault = fault('iscsiadm.rescan', 1);
    try {
      await expect(grow()).rejects.toMatchObject({ code: 'OperationFailed', message: expect.stringMatching(/iscsi\.rescan/) });
    } finally {
      unfault();
    }
    // Another VM on the same host cannot have it while vm1 writes to it.
    await expect(client.call('AttachDisk', { volumeId: VOL_A, vmId: 'vm2', device: 'xvdb', mode: 'r', source: src })).rejects.toMatchObject({ code: 'OperationFailed' });
    for (let i = 0; i < 2; i++) await client.call('DetachDisk', { volumeId: VOL_A, vmId: 'vm1', device: 'xvdb', source: src });
    expect(await disks('vm1')).toEqual([]);
    // The second logout meets exit 21 (no objects found) twice, logout and forget: done already.
    for (let i = 0; i < 2; i++) expect(await client.call('LogoutTarget', { volumeId: VOL_A, source: src })).toEqual({ return: true });
    expect(sim('iscsiadm', '-m', 'session').code).toBe(21);
    expect(sim('iscsiadm', '-m', 'node').code).toBe(21);
  });

  it('fails a discovery that does not report the target, and attaching a LUN it is not logged in to', async () => {
    const src = source(PORTAL, VOL_B);
    await expect(client.call('DiscoverTarget', { volumeId: VOL_B, source: src })).rejects.toMatchObject({ code: 'OperationFailed' });
    await expect(client.call('AttachDisk', { volumeId: VOL_B, vmId: 'vm1', device: 'xvdc', mode: 'w', source: src })).rejects.toMatchObject({
      code: 'OperationFailed',
    });
    expect(await disks('vm1')).toEqual([]);
  });

  it('takes iscsiadm exit codes at their word: 15 on login and 21 on logout are success, others are failures', async () => {
    const src = source(PORTAL, VOL_C);
    let clear = fault('iscsiadm.login', 15);
    expect(await client.call('LoginTarget', { volumeId: VOL_C, source: src })).toEqual({ device: byPath(PORTAL, VOL_C) });
    clear();
    clear = fault('iscsiadm.login', 19);
    await expect(client.call('LoginTarget', { volumeId: VOL_C, source: src })).rejects.toMatchObject({ code: 'OperationFailed', message: expect.stringContaining('exited with 19') });
    clear();
    clear = fault('iscsiadm.logout', 21);
    expect(await client.call('LogoutTarget', { volumeId: VOL_C, source: src })).toEqual({ return: true });
    clear();
    // A logout that fails while the session is still open is a failure; the
    // session listing (vmm.sim.iscsi.sessions) is what decides, not the exit code alone.
    expect(sim('iscsi', 'target', 'add', PORTAL, iqnOf(VOL_C), `1=${lunFile('c.img')}`).code).toBe(0);
    await client.call('DiscoverTarget', { volumeId: VOL_C, source: src });
    await client.call('LoginTarget', { volumeId: VOL_C, source: src });
    clear = fault('iscsiadm.logout', 4);
    try {
      await expect(client.call('LogoutTarget', { volumeId: VOL_C, source: src })).rejects.toMatchObject({ code: 'OperationFailed' });
    } finally {
      clear();
    }
    await client.call('LogoutTarget', { volumeId: VOL_C, source: src });
    clear = fault('iscsiadm.discovery', 4);
    await expect(client.call('DiscoverTarget', { volumeId: VOL_C, source: src })).rejects.toMatchObject({ code: 'OperationFailed' });
    clear();
  });

  it('refuses hostile sources as client faults without running a command', async () => {
    const clear = failEveryIscsiadm();
    try {
      const hostile = [
        { kind: 'iscsi', portal: '127.0.0.1;reboot', iqn: iqnOf(VOL_A), lun: 1 },
        { kind: 'iscsi', portal: '-p', iqn: iqnOf(VOL_A), lun: 1 },
        { kind: 'iscsi', portal: PORTAL, iqn: 'iqn.2010-10.org.example:../../etc/passwd', lun: 1 },
        { kind: 'iscsi', portal: PORTAL, iqn: '--logoutall=all', lun: 1 },
        { kind: 'iscsi', portal: PORTAL, iqn: iqnOf(VOL_A), lun: 999999 },
        { kind: 'nbd', portal: PORTAL, iqn: iqnOf(VOL_A), lun: 1 },
      ];
      for (const src of hostile) {
        for (const op of ['DiscoverTarget', 'LoginTarget', 'LogoutTarget']) {
          await expect(client.call(op, { volumeId: VOL_A, source: src })).rejects.toMatchObject({ code: 'InvalidParameterValue' });
        }
        await expect(client.call('AttachDisk', { volumeId: VOL_A, vmId: 'vm1', device: 'xvdb', mode: 'w', source: src })).rejects.toMatchObject({
          code: 'InvalidParameterValue',
        });
      }
      await expect(client.call('DiscoverTarget', { volumeId: 'vol-1; reboot', source: source(PORTAL, VOL_A) })).rejects.toMatchObject({ code: 'InvalidParameterValue' });
      await expect(client.call('ListDisks', { vmId: ['vm1', '-rf'] })).rejects.toMatchObject({ code: 'InvalidParameterValue' });
      // File sources need no connection: nothing runs, nothing fails.
      expect(await client.call('DiscoverTarget', { volumeId: VOL_A, source: { kind: 'file', path: join(volumes, `${VOL_A}.img`) } })).toEqual({ return: true });
    } finally {
      clear();
    }
  });

  it('lists the disks of every VM, recognising volume files in its volume roots, and of the VMs asked for', async () => {
    const file = join(volumes, `${VOL_B}.img`);
    writeFileSync(file, '');
    truncateSync(file, 1024 * 1024);
    const other = lunFile('not-a-volume.img');
    expect(sim('xm', 'block-attach', 'vm3', `file:${other}`, 'xvda', 'w').code).toBe(0);
    for (const vm of ['vm2', 'vm3']) {
      for (let i = 0; i < 2; i++) await client.call('AttachDisk', { volumeId: VOL_B, vmId: vm, device: 'xvdd', mode: 'r', source: { kind: 'file', path: file } });
    }
    expect(await disks()).toEqual([
      { vmId: 'vm2', device: 'xvdd', target: file, mode: 'r', volumeId: VOL_B },
      { vmId: 'vm3', device: 'xvda', target: other, mode: 'w' },
      { vmId: 'vm3', device: 'xvdd', target: file, mode: 'r', volumeId: VOL_B },
    ]);
    expect(await disks('vm2', 'no-such-vm')).toEqual([{ vmId: 'vm2', device: 'xvdd', target: file, mode: 'r', volumeId: VOL_B }]);
    // Attaching the same volume in another mode is not "done already".
    await expect(client.call('AttachDisk', { volumeId: VOL_B, vmId: 'vm2', device: 'xvdd', mode: 'w', source: { kind: 'file', path: file } })).rejects.toMatchObject({
      code: 'OperationFailed',
    });
    for (const vm of ['vm2', 'vm3']) await client.call('DetachDisk', { volumeId: VOL_B, vmId: vm, device: 'xvdd', source: { kind: 'file', path: file } });
    expect(sim('xm', 'block-detach', 'vm3', 'xvda').code).toBe(0);
    expect(await disks()).toEqual([]);
    // Attaching to a VM the host does not have is refused: the listing shows it holds nothing.
    await expect(client.call('AttachDisk', { volumeId: VOL_B, vmId: 'vm9', device: 'xvdd', mode: 'r', source: { kind: 'file', path: file } })).rejects.toMatchObject({
      code: 'OperationFailed',
    });
  });
});

/** A fault file of the simulator: `fail/` (fails, changes nothing) or `fail-after/` (acts, then fails), `count` times. */
function simFault(kind: 'fail' | 'fail-after', name: string, count: number): () => void {
  const file = join(simState, kind, name);
  mkdirSync(join(simState, kind), { recursive: true });
  writeFileSync(file, `${name}: injected\n`);
  writeFileSync(`${file}.count`, String(count));
  return () => {
    rmSync(file, { force: true });
    rmSync(`${file}.count`, { force: true });
  };
}

function volumeFile(vol: string): string {
  const file = join(volumes, `${vol}.img`);
  writeFileSync(file, '');
  truncateSync(file, 1024 * 1024);
  return file;
}

describe('the VMM Delegate answers "refused" only when it saw that nothing changed (issue 16)', () => {
  it('reports an attach that acted, then failed, while the listing failed, as an unknown outcome, not a refusal', async () => {
    const src = { kind: 'file', path: volumeFile(VOL_A) };
    const clear = [simFault('fail-after', 'xm.block-attach', 1), simFault('fail', 'xm.list', 1)];
    try {
      await expect(client.call('AttachDisk', { volumeId: VOL_A, vmId: 'vm1', device: 'xvdf', mode: 'w', source: src })).rejects.toMatchObject({
        code: 'ServiceUnavailable',
        message: expect.stringContaining('outcome is unknown'),
      });
    } finally {
      clear.forEach((c) => c());
    }
    // It had acted: the disk is on the VM, and the undo the front runs for an unknown outcome removes it.
    expect(await disks('vm1')).toEqual([{ vmId: 'vm1', device: 'xvdf', target: src.path, mode: 'w', volumeId: VOL_A }]);
    await client.call('DetachDisk', { volumeId: VOL_A, vmId: 'vm1', device: 'xvdf', source: src });
    expect(await disks('vm1')).toEqual([]);
  });

  it('takes an attach that acted, then failed, for done when the listing shows the disk', async () => {
    const src = { kind: 'file', path: volumeFile(VOL_A) };
    const clear = simFault('fail-after', 'xm.block-attach', 1);
    try {
      await client.call('AttachDisk', { volumeId: VOL_A, vmId: 'vm1', device: 'xvdf', mode: 'w', source: src });
    } finally {
      clear();
    }
    expect(await disks('vm1')).toEqual([{ vmId: 'vm1', device: 'xvdf', target: src.path, mode: 'w', volumeId: VOL_A }]);
    await client.call('DetachDisk', { volumeId: VOL_A, vmId: 'vm1', device: 'xvdf', source: src });
  });

  it('never detaches a device it has not seen: a leftover detach of V1 leaves V2, which a newer attach put there, in place', async () => {
    const [v1, v2] = [{ kind: 'file', path: volumeFile(VOL_A) }, { kind: 'file', path: volumeFile(VOL_B) }];
    await client.call('AttachDisk', { volumeId: VOL_B, vmId: 'vm1', device: 'xvdg', mode: 'w', source: v2 });
    const clear = simFault('fail', 'xm.list', 1);
    try {
      await expect(client.call('DetachDisk', { volumeId: VOL_A, vmId: 'vm1', device: 'xvdg', source: v1 })).rejects.toMatchObject({ code: 'ServiceUnavailable' });
    } finally {
      clear();
    }
    expect(await disks('vm1')).toEqual([{ vmId: 'vm1', device: 'xvdg', target: v2.path, mode: 'w', volumeId: VOL_B }]);
    // Once the listing answers, V1's detach is done (nothing of V1 is there) and V2 stays.
    await client.call('DetachDisk', { volumeId: VOL_A, vmId: 'vm1', device: 'xvdg', source: v1 });
    expect(await disks('vm1')).toEqual([{ vmId: 'vm1', device: 'xvdg', target: v2.path, mode: 'w', volumeId: VOL_B }]);
    await client.call('DetachDisk', { volumeId: VOL_B, vmId: 'vm1', device: 'xvdg', source: v2 });
  });

  it('takes a detach that acted, then failed, for done when the listing shows the disk gone', async () => {
    const src = { kind: 'file', path: volumeFile(VOL_A) };
    await client.call('AttachDisk', { volumeId: VOL_A, vmId: 'vm1', device: 'xvdh', mode: 'w', source: src });
    const clear = simFault('fail-after', 'xm.block-detach', 1);
    try {
      await client.call('DetachDisk', { volumeId: VOL_A, vmId: 'vm1', device: 'xvdh', source: src });
    } finally {
      clear();
    }
    expect(await disks('vm1')).toEqual([]);
  });

  it('takes a VM the host does not list as holding nothing: its detach is done, but not when the host cannot list its VMs', async () => {
    const src = { kind: 'file', path: volumeFile(VOL_C) };
    expect(sim('vm', 'create', 'doomed').code).toBe(0);
    await client.call('AttachDisk', { volumeId: VOL_C, vmId: 'doomed', device: 'xvdb', mode: 'w', source: src });
    expect(sim('vm', 'destroy', 'doomed').code).toBe(0);
    const clear = simFault('fail', 'xm.list', 2);
    try {
      await expect(client.call('DetachDisk', { volumeId: VOL_C, vmId: 'doomed', device: 'xvdb', source: src })).rejects.toMatchObject({ code: 'ServiceUnavailable' });
    } finally {
      clear();
    }
    for (let i = 0; i < 2; i++) expect(await client.call('DetachDisk', { volumeId: VOL_C, vmId: 'doomed', device: 'xvdb', source: src })).toEqual({ return: true });
  });
});

describe('the VMM Delegate over SOAP, against a real tgtd', () => {
  let tgt: RealTarget | undefined;
  afterEach(async () => {
    await tgt?.stop();
    tgt = undefined;
  });

  it('runs the paper\'s attach and detach steps on a real target, and lists the LUN as the volume', async () => {
    tgt = await startTgtd();
    tgt.add(iqnOf(VOL_C), lunFile('c.img'));
    const src = source(tgt.portal, VOL_C);
    const dev = byPath(tgt.portal, VOL_C);
    await client.call('DiscoverTarget', { volumeId: VOL_C, source: src });
    expect(nodes()).toContain(`${tgt.portal},1 ${iqnOf(VOL_C)}`);
    expect(await client.call('LoginTarget', { volumeId: VOL_C, source: src })).toEqual({ device: dev });
    expect(await client.call('LoginTarget', { volumeId: VOL_C, source: src })).toEqual({ device: dev });
    await client.call('AttachDisk', { volumeId: VOL_C, vmId: 'vm1', device: 'xvde', mode: 'r', source: src });
    await client.call('AttachDisk', { volumeId: VOL_C, vmId: 'vm2', device: 'xvde', mode: 'r', source: src });
    expect(await disks('vm1', 'vm2')).toEqual([
      { vmId: 'vm1', device: 'xvde', target: dev, mode: 'r', volumeId: VOL_C },
      { vmId: 'vm2', device: 'xvde', target: dev, mode: 'r', volumeId: VOL_C },
    ]);
    // Read-only attachments share; a writer may not join them.
    await expect(client.call('AttachDisk', { volumeId: VOL_C, vmId: 'vm3', device: 'xvde', mode: 'w', source: src })).rejects.toMatchObject({ code: 'OperationFailed' });
    // A LUN the target does not have has no device.
    await expect(client.call('AttachDisk', { volumeId: VOL_C, vmId: 'vm3', device: 'xvdf', mode: 'r', source: source(tgt.portal, VOL_C, 2) })).rejects.toMatchObject({
      code: 'OperationFailed',
    });
    for (const vm of ['vm1', 'vm2']) await client.call('DetachDisk', { volumeId: VOL_C, vmId: vm, device: 'xvde', source: src });
    await client.call('LogoutTarget', { volumeId: VOL_C, source: src });
    await client.call('LogoutTarget', { volumeId: VOL_C, source: src });
    expect(sim('iscsiadm', '-m', 'session').code).toBe(21);
    expect(await disks()).toEqual([]);
  });

  it('fails a login to a real portal that went away', async () => {
    tgt = await startTgtd();
    tgt.add(iqnOf(VOL_A), lunFile('a2.img'));
    const src = source(tgt.portal, VOL_A);
    await client.call('DiscoverTarget', { volumeId: VOL_A, source: src });
    await tgt.stop();
    await expect(client.call('LoginTarget', { volumeId: VOL_A, source: src })).rejects.toMatchObject({ code: 'OperationFailed', message: expect.stringContaining('exited with 4') });
    await expect(client.call('DiscoverTarget', { volumeId: VOL_A, source: src })).rejects.toMatchObject({ code: 'OperationFailed' });
    await client.call('LogoutTarget', { volumeId: VOL_A, source: src });
  });
});

describe('ResizeDisk (ModifyVolume) on the simulated Xen host', () => {
  it('looks first: the disk there is picked up by the hypervisor itself (automatic), no disk there is absent; hostile input runs nothing', async () => {
    const file = join(volumes, `${VOL_C}.img`);
    writeFileSync(file, '');
    truncateSync(file, 1024 ** 3);
    await client.call('AttachDisk', { volumeId: VOL_C, vmId: 'vm3', device: 'xvdh', mode: 'w', source: { kind: 'file', path: file } });
    const resize = (over: XmlRecord = {}) => client.call('ResizeDisk', { volumeId: VOL_C, vmId: 'vm3', device: 'xvdh', sizeBytes: 2 * 1024 ** 3, source: { kind: 'file', path: file }, ...over });
    expect((await resize()).outcome).toBe('automatic');
    expect((await resize({ vmId: 'vm2' })).outcome).toBe('absent');
    expect((await resize({ device: 'xvdz' })).outcome).toBe('absent');
    // Another volume's disk is not this one's, whatever device it is on.
    expect((await resize({ volumeId: VOL_B, source: { kind: 'file', path: join(volumes, `${VOL_B}.img`) } })).outcome).toBe('absent');
    for (const bad of [{ sizeBytes: 1000 }, { sizeBytes: -(1024 ** 3) }, { sizeBytes: 'lots' }, { vmId: 'vm1;rm' }, { device: '../sda' }]) {
      await expect(resize(bad)).rejects.toMatchObject({ code: 'InvalidParameterValue' });
    }
    await client.call('DetachDisk', { volumeId: VOL_C, vmId: 'vm3', device: 'xvdh', source: { kind: 'file', path: file } });
    expect((await resize()).outcome).toBe('absent');
  });
});
