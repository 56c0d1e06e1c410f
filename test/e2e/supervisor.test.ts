import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hostInitiatorName } from '../../src/core/initiator-name.js';
import { canRunTgtd } from '../../src/deploy/tgtd.js';
import { RestartBudget } from '../../src/deploy/restart-policy.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import type { SoapClient } from '../../src/soap/client.js';
import { libiscsi } from '../delegates/volume/helpers.js';
import { eventually, ROOT, startVbs, type Vbs } from './harness.js';
import { childrenOf, cmdline, isRunning } from '../../src/soak/processes.js';

/**
 * `vbs up` as a supervisor, through real processes: a service killed with
 * SIGKILL is started again on the same URL and the deployment works on; one
 * that dies on every start is given up on, and nothing is left running.
 */

const HOSTSIM = join(ROOT, 'dist', 'sim', 'hostsim.js');
const running: { vbs: Vbs; stderr: Output }[] = [];

afterEach(async () => {
  for (const { vbs } of running.splice(0)) {
    await vbs.stop(true);
    // Processes a killed service left behind (a hung simulator command it had started) carry the folder in their command line.
    for (const pid of processesMentioning(vbs.dir)) killQuietly(pid);
    await eventually(async () => (processesMentioning(vbs.dir).length === 0 ? true : undefined), 20_000);
    rmSync(vbs.dir, { recursive: true, force: true });
  }
});

/** What `vbs up` writes on stderr from now on. */
class Output {
  text = '';
  constructor(vbs: Vbs) {
    vbs.process.stderr!.on('data', (d: Buffer) => (this.text += d.toString('utf8')));
  }
  count(fragment: string): number {
    return this.text.split(fragment).length - 1;
  }
  /** Waits until `fragment` has appeared `times` times. */
  async waitFor(fragment: string, times = 1, ms = 60_000): Promise<void> {
    await eventually(async () => (this.count(fragment) >= times ? true : undefined), ms).catch(() => {
      throw new Error(`vbs up never said "${fragment}" ${times} time(s); it said:\n${this.text}`);
    });
  }
}

async function start(args: string[] = [], env: NodeJS.ProcessEnv = process.env): Promise<{ vbs: Vbs; stderr: Output }> {
  const vbs = await startVbs(args, undefined, env);
  const entry = { vbs, stderr: new Output(vbs) };
  running.push(entry);
  return entry;
}

function livePids(): number[] {
  return readdirSync('/proc')
    .filter((d) => /^[0-9]+$/.test(d))
    .map(Number)
    .filter(isRunning);
}

function processesMentioning(dir: string): number[] {
  return livePids().filter((p) => p !== process.pid && cmdline(p).includes(dir));
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** The PID of one of `vbs up`'s services, found as its child: `vbs serve <role>`, or `tgtd`. */
function servicePid(vbs: Vbs, role: string): number {
  const match = childrenOf(vbs.process.pid!).filter((p) => (role === 'tgtd' ? /^tgtd /.test(cmdline(p)) : cmdline(p).includes(` serve ${role} `)));
  expect(match, `the ${role} process among ${childrenOf(vbs.process.pid!).map(cmdline).join('; ')}`).toHaveLength(1);
  return match[0]!;
}

/** Kills a service of `vbs up` with SIGKILL and waits until it is gone. */
async function killService(vbs: Vbs, role: string): Promise<number> {
  const pid = servicePid(vbs, role);
  process.kill(pid, 'SIGKILL');
  await eventually(async () => (isRunning(pid) ? undefined : true), 20_000);
  return pid;
}

const readJson = <T>(vbs: Vbs, file: string) => JSON.parse(readFileSync(join(vbs.dir, file), 'utf8')) as T;
type FrontJson = { listen: { port: number }; volumeDelegates: { url: string }[]; vmmHosts: { url: string }[] };
const portOf = (url: string) => Number(new URL(url).port);

async function volumeStatus(c: SoapClient, id: string): Promise<XmlRecord> {
  return ((await c.call('DescribeVolumes', { volumeId: [id] })).volume as XmlRecord[])[0]!;
}

async function availableVolume(c: SoapClient, size = 1): Promise<string> {
  const id = String(((await c.call('CreateVolume', { size })).volume as XmlRecord).volumeId);
  await eventually(async () => ((await volumeStatus(c, id)).status === 'available' ? true : undefined), 60_000);
  return id;
}

function vmDisks(vbs: Vbs, vm: string): { dev: string; mode: string }[] {
  const vms = JSON.parse(execFileSync(process.execPath, [HOSTSIM, '--state', join(vbs.dir, 'vmm-sim'), 'vm', 'list'], { encoding: 'utf8' })) as {
    name: string;
    disks: { dev: string; mode: string }[];
  }[];
  return vms.find((v) => v.name === vm)!.disks;
}

async function expectCheckClean(vbs: Vbs): Promise<void> {
  const r = await vbs.cli('admin', 'check');
  expect(r, 'vbs admin check').toMatchObject({ code: 0, stderr: '' });
}

describe('the restart budget', () => {
  it('waits 0.5 s, doubling to 10 s, and gives up on more than 5 restarts within 60 s', () => {
    const budget = new RestartBudget();
    const delays = [0, 1, 2, 3, 4].map((i) => budget.next(1_000 * i));
    expect(delays).toEqual([1, 2, 3, 4, 5].map((restart) => ({ giveUp: false, restart, delayMs: Math.min(10_000, 500 * 2 ** (restart - 1)) })));
    expect(budget.next(10_000)).toEqual({ giveUp: true, restarts: 5 });
    // Once the first restarts fall out of the window, restarting is allowed again.
    expect(budget.next(61_000)).toMatchObject({ giveUp: false, restart: 4 });
  });

  it('caps the delay at 10 s', () => {
    const budget = new RestartBudget({ initialDelayMs: 500, maxDelayMs: 10_000, maxRestarts: 10, windowMs: 60_000 });
    const delays = Array.from({ length: 8 }, () => budget.next(0)).map((d) => (d.giveUp ? -1 : d.delayMs));
    expect(delays).toEqual([500, 1_000, 2_000, 4_000, 8_000, 10_000, 10_000, 10_000]);
  });

  it('starts again from the short delay once the window has passed', () => {
    const budget = new RestartBudget();
    for (let i = 0; i < 5; i++) budget.next(0);
    expect(budget.next(60_000)).toEqual({ giveUp: false, restart: 1, delayMs: 500 });
  });
});

describe('vbs up restarts a service that dies', { timeout: 240_000 }, () => {
  it('the VMM delegate, killed: restarted on the same URL, and attach works', async () => {
    const { vbs, stderr } = await start();
    const c = vbs.soap();
    const volumeId = await availableVolume(c);
    const vmmUrl = readJson<FrontJson>(vbs, 'front.json').vmmHosts[0]!.url;
    const killed = await killService(vbs, 'vmm-delegate');
    await stderr.waitFor('the vmm-delegate service is back');
    expect(stderr.text).toContain(`the vmm-delegate service (PID ${killed}) stopped unexpectedly (signal SIGKILL)`);
    expect(stderr.text).toContain(`vmm-delegate service is back (PID ${servicePid(vbs, 'vmm-delegate')}, ${vmmUrl})`);
    expect(servicePid(vbs, 'vmm-delegate')).not.toBe(killed);
    expect(readJson<FrontJson>(vbs, 'front.json').vmmHosts[0]!.url).toBe(vmmUrl);
    expect(readJson<{ listen: { port: number } }>(vbs, 'vmm-delegate.json').listen.port).toBe(portOf(vmmUrl));
    // The restart is in the service's log, beside the restarted process's own lines.
    const log = readFileSync(join(vbs.dir, 'logs', 'vmm-delegate.log'), 'utf8');
    expect(log).toMatch(/"source":"vbs up","msg":"service stopped unexpectedly".*"how":"signal SIGKILL"/);
    expect(log).toMatch(/"source":"vbs up","msg":"service restarted"/);

    await vbs.soap().call('AttachVolume', { volumeId, vmmHost: 'localhost', vmId: 'vm1', device: 'xvdb' });
    await eventually(async () => ((await volumeStatus(c, volumeId)).status === 'in-use' ? true : undefined));
    expect(vmDisks(vbs, 'vm1')).toEqual([expect.objectContaining({ dev: 'xvdb', mode: 'w' })]);
    await expectCheckClean(vbs);
    await c.call('DetachVolume', { volumeId });
    await eventually(async () => ((await volumeStatus(c, volumeId)).status === 'available' ? true : undefined));
    expect(vmDisks(vbs, 'vm1')).toEqual([]);
  });

  it('the volume delegate, killed right after a create: restarted on the same URL, the volume is made, snapshots work', async () => {
    const { vbs, stderr } = await start();
    const c = vbs.soap();
    const volumeUrl = readJson<FrontJson>(vbs, 'front.json').volumeDelegates[0]!.url;
    const volumeId = String(((await c.call('CreateVolume', { size: 2 })).volume as XmlRecord).volumeId);
    await killService(vbs, 'volume-delegate');
    await stderr.waitFor('the volume-delegate service is back');
    expect(stderr.text).toContain(`volume-delegate service is back (PID ${servicePid(vbs, 'volume-delegate')}, ${volumeUrl})`);
    expect(readJson<FrontJson>(vbs, 'front.json').volumeDelegates[0]!.url).toBe(volumeUrl);
    await eventually(async () => ((await volumeStatus(c, volumeId)).status === 'available' ? true : undefined), 60_000);
    const snapshotId = String(((await c.call('CreateSnapshot', { volumeId })).snapshot as XmlRecord).snapshotId);
    await eventually(async () =>
      String(((await c.call('DescribeSnapshots', { snapshotId: [snapshotId] })).snapshot as XmlRecord[])[0]!.status) === 'completed' ? true : undefined,
    );
    await expectCheckClean(vbs);
  });

  it('the front, killed: restarted on the same URL with client.json still valid; killed mid-attach, its recovery rolls the attach back', async () => {
    // The restarted front keeps this crash point, which only an attach reaches: killed (SIGKILL) before the disk is attached.
    const { vbs, stderr } = await start([], { ...process.env, VBS_CRASH_AT: 'AttachVolume/4/before' });
    const volumeId = await availableVolume(vbs.soap());
    const clientJson = readFileSync(vbs.clientConfig, 'utf8');
    const killed = await killService(vbs, 'front');
    await stderr.waitFor('the front service is back');
    expect(stderr.text).toContain(`the front service (PID ${killed}) stopped unexpectedly (signal SIGKILL)`);
    expect(stderr.text).toContain(`front service is back (PID ${servicePid(vbs, 'front')}, ${vbs.url})`);
    expect(readFileSync(vbs.clientConfig, 'utf8')).toBe(clientJson);
    expect(readJson<FrontJson>(vbs, 'front.json').listen.port).toBe(portOf(vbs.url));
    const described = await vbs.cli('--json', 'describe-volumes', volumeId);
    expect(described.code, described.stderr).toBe(0);
    expect(JSON.parse(described.stdout)).toEqual([expect.objectContaining({ volumeId, status: 'available' })]);

    await expect(vbs.soap().call('AttachVolume', { volumeId, vmmHost: 'localhost', vmId: 'vm1', device: 'xvdb' })).rejects.toMatchObject({
      code: 'ServiceUnavailable',
    });
    await stderr.waitFor('the front service is back', 2);
    // The restarted front listens first and recovers in the background: the attach is rolled back, nothing is left attaching.
    await eventually(async () => {
      const v = await volumeStatus(vbs.soap(), volumeId);
      return v.status === 'available' && (v.attachments as unknown[] | undefined ?? []).length === 0 ? true : undefined;
    }, 60_000);
    expect(await volumeStatus(vbs.soap(), volumeId)).toMatchObject({ status: 'available', attachments: [] });
    expect(vmDisks(vbs, 'vm1')).toEqual([]);
    await eventually(async () => (/"msg":"recovered interrupted workflows"/.test(readFileSync(join(vbs.dir, 'logs', 'front.log'), 'utf8')) ? true : undefined), 60_000);
    await expectCheckClean(vbs);
  });

  it('with --backend lvm-iscsi: the volume delegate killed mid-copy (the snapshot ends in error), then tgtd killed; targets come back', async () => {
    expect(canRunTgtd(), 'the lvm-iscsi supervisor test needs root and tgtd (npm test installs it)').toBe(true);
    const { vbs, stderr } = await start(['--backend', 'lvm-iscsi']);
    const c = vbs.soap();
    const volumeId = await availableVolume(c);
    // The snapshot's copy stops just before it is renamed into place (hostsim's hang/, once), so it is in progress when the delegate dies.
    const hang = join(vbs.dir, 'vmm-sim', 'hang');
    mkdirSync(hang, { recursive: true });
    writeFileSync(join(hang, 'lvrename.rename'), '600');
    writeFileSync(join(hang, 'lvrename.rename.count'), '1');
    const snapshotId = String(((await c.call('CreateSnapshot', { volumeId })).snapshot as XmlRecord).snapshotId);
    // The simulator counts the hang down when it starts sleeping: from then on the copy is stuck in the rename.
    await eventually(async () => (readFileSync(join(hang, 'lvrename.rename.count'), 'utf8').trim() === '0' ? true : undefined), 60_000);
    const hung = await eventually(async () => processesMentioning(vbs.dir).find((p) => cmdline(p).includes(' lvrename ')), 60_000);
    const snapshot = async () => ((await c.call('DescribeSnapshots', { snapshotId: [snapshotId] })).snapshot as XmlRecord[])[0]!;
    expect(await snapshot()).toMatchObject({ status: 'pending' });
    await killService(vbs, 'volume-delegate');
    killQuietly(hung); // the dead delegate's command, which we started
    await stderr.waitFor('the volume-delegate service is back');
    // The front finds the copy lost: its cow. source (the moment) went with it, so the snapshot ends in error, never re-taken.
    await eventually(async () => ((await snapshot()).status !== 'pending' ? true : undefined), 90_000);
    expect(await snapshot()).toMatchObject({ status: 'error', statusMessage: expect.stringMatching(/restarted while copying this snapshot/) });
    expect(readFileSync(join(vbs.dir, 'logs', 'front.log'), 'utf8')).not.toContain('restarting a copy the volume delegate lost');

    await c.call('AttachVolume', { volumeId, vmmHost: 'localhost', vmId: 'vm1', device: 'xvdb' });
    await eventually(async () => ((await volumeStatus(c, volumeId)).status === 'in-use' ? true : undefined));
    const portal = readJson<{ backend: { portal: string } }>(vbs, 'volume-delegate.json').backend.portal;
    const iqn = `iqn.2026-11.org.vbs:${volumeId}`;
    expect(libiscsi('iscsi-ls', '-s', '-i', hostInitiatorName('localhost'), `iscsi://${portal}`).stdout).toContain(iqn);

    const delegateBefore = servicePid(vbs, 'volume-delegate');
    const killedTgtd = await killService(vbs, 'tgtd');
    await stderr.waitFor('the tgtd service is back');
    await stderr.waitFor('the volume-delegate service is back', 2);
    // tgtd first, on the same portal; then the volume delegate, which puts the target back when it opens.
    const tail = stderr.text.slice(stderr.text.indexOf(`the tgtd service (PID ${killedTgtd}) stopped unexpectedly`));
    expect(tail.indexOf('the tgtd service is back')).toBeLessThan(tail.indexOf('restarting the volume-delegate service after the tgtd service'));
    expect(servicePid(vbs, 'volume-delegate')).not.toBe(delegateBefore);
    expect(readJson<{ backend: { portal: string } }>(vbs, 'volume-delegate.json').backend.portal).toBe(portal);
    await eventually(async () => (libiscsi('iscsi-ls', '-s', '-i', hostInitiatorName('localhost'), `iscsi://${portal}`).stdout.includes(iqn) ? true : undefined));
    expect(readFileSync(join(vbs.dir, 'logs', 'volume-delegate.log'), 'utf8')).toContain('restored the target of an exported volume');

    await expectCheckClean(vbs);
    await c.call('DetachVolume', { volumeId });
    await eventually(async () => ((await volumeStatus(c, volumeId)).status === 'available' ? true : undefined));
    expect(libiscsi('iscsi-ls', '-s', '-i', hostInitiatorName('localhost'), `iscsi://${portal}`).stdout).not.toContain(iqn);
  });
});

describe('vbs up stopping', { timeout: 120_000 }, () => {
  it('on SIGTERM, right after a restart: every service stops, none is restarted, exit 0', async () => {
    const { vbs, stderr } = await start();
    await killService(vbs, 'volume-delegate');
    await stderr.waitFor('the volume-delegate service is back');
    const services = childrenOf(vbs.process.pid!);
    expect(services).toHaveLength(4); // volume delegate, VMM delegate, instance resolver, front
    const exited = new Promise<number | null>((r) => vbs.process.once('exit', (code) => r(code)));
    vbs.process.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stderr.count('stopped unexpectedly')).toBe(1);
    expect(stderr.count('restarting the')).toBe(1);
    for (const pid of services) expect(isRunning(pid), `pid ${pid}: ${cmdline(pid)}`).toBe(false);
    expect(processesMentioning(vbs.dir).map(cmdline)).toEqual([]);
  });
});

describe('vbs up gives up on a service that dies on every start', { timeout: 240_000 }, () => {
  it('after 5 restarts: a message naming the service and its log, exit 1, and no process left', async () => {
    const { vbs, stderr } = await start();
    const services = childrenOf(vbs.process.pid!);
    expect(services).toHaveLength(4); // volume delegate, VMM delegate, instance resolver, front
    const exited = new Promise<number | null>((r) => vbs.process.once('exit', (code) => r(code)));
    // Every start from now on fails: the configuration no longer parses.
    writeFileSync(join(vbs.dir, 'vmm-delegate.json'), '{ "role": "vmm-delegate", ');
    await killService(vbs, 'vmm-delegate');
    expect(await exited).toBe(1);
    expect(stderr.count('restarting the vmm-delegate service in')).toBe(5);
    expect(stderr.count('the vmm-delegate service did not start again')).toBe(5);
    const log = join(vbs.dir, 'logs', 'vmm-delegate.log');
    expect(stderr.text).toContain(
      `vbs up: the vmm-delegate service keeps stopping (restarted 5 times within 60 s; last: vmm-delegate exited (exit code 1) before it was ready; see ${log}); ` +
        `giving up and stopping every service. Its log: ${log}`,
    );
    // Why it failed is in that log: the configuration it could not read.
    expect(readFileSync(log, 'utf8')).toMatch(/vbs serve vmm-delegate: .*vmm-delegate\.json/);
    expect(readFileSync(join(vbs.dir, 'logs', 'vmm-delegate.log'), 'utf8')).toMatch(/"msg":"giving up on the service"/);
    for (const pid of services) expect(isRunning(pid), `pid ${pid}: ${cmdline(pid)}`).toBe(false);
    expect(processesMentioning(vbs.dir).map(cmdline)).toEqual([]);
  });
});
