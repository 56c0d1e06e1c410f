import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SoapClient } from '../../src/soap/client.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { findViolations, settleAndCheck, simVms } from './invariants.js';
import { assignVms, ROOT } from './harness.js';
import { startRaceDeployment, type RaceDeployment } from './race-deployment.js';
import { clients, describeVolume, expectFaults, inOrder, newVolume, raceChecked, successes, type Outcome } from './race-helpers.js';

/**
 * Attach and detach races through the real services: many SOAP clients (each
 * with its own mutual-TLS connections, several users) fire at once against
 * `vbs serve` processes; after every round the deployment must be quiet and
 * consistent (test/e2e/invariants.ts), and the simulated hypervisors must
 * agree with the metadata.
 */
const ROUNDS = 3;
const VMS = ['vm1', 'vm2', 'vm3', 'vm4', 'vm5', 'vm6', 'vm7', 'vm8'];
const HOSTS = ['localhost', 'host2'];
/** Every (host, VM) pair: 16 targets. */
const TARGETS = HOSTS.flatMap((host) => VMS.map((vm) => ({ host, vm })));

let d: RaceDeployment;
let alice: SoapClient[];
beforeAll(async () => {
  d = await startRaceDeployment({ capacityGiB: 32, hosts: HOSTS.map((name) => ({ name, vms: VMS })) });
  alice = await clients(d, 'alice', TARGETS.length);
  for (const host of HOSTS) await assignVms(d.soap('admin'), 'alice', host, VMS); // a user attaches only into VMs they own
}, 120_000);
afterAll(async () => {
  await d?.stop();
});
afterEach(async () => {
  if (d) await settleAndCheck(d.dir);
});

const attach = (c: SoapClient, volumeId: string, t: { host: string; vm: string }, mode: 'r' | 'w', device = 'xvdf') => () =>
  c.call('AttachVolume', { volumeId, vmmHost: t.host, vmId: t.vm, device, mode });
const detach = (c: SoapClient, volumeId: string, t?: { host: string; vm: string }) => () =>
  c.call('DetachVolume', { volumeId, ...(t ? { vmmHost: t.host, vmId: t.vm } : {}) });

/** The VBS volume disks the simulated hypervisors hold, as `host/vm/dev mode volume`. */
function disksOf(volumeId: string): string[] {
  const hosts = HOSTS.map((h, i) => ({ h, state: join(d.dir, i === 0 ? 'vmm-sim' : `vmm-sim-${h}`) }));
  return hosts
    .flatMap(({ h, state }) => simVms(state).flatMap((vm) => vm.disks.filter((x) => x.target.includes(volumeId)).map((x) => `${h}/${vm.name}/${x.dev} ${x.mode}`)))
    .sort();
}

async function cleanUp(volumeId: string): Promise<void> {
  const c = alice[0]!;
  for (const a of ((await describeVolume(c, volumeId)).attachments as XmlRecord[] | undefined) ?? []) {
    await c.call('DetachVolume', { volumeId, vmmHost: a.vmmHost, vmId: a.vmId });
  }
  await c.call('DeleteVolume', { volumeId });
}

describe('racing attaches of one volume', () => {
  it('read-write from 16 clients at once: exactly one wins, the rest are told the volume is in use', async () => {
    const mallory = await clients(d, 'mallory', 2);
    for (let round = 0; round < ROUNDS; round++) {
      const vol = await newVolume(alice[0]!);
      const own = await raceChecked(d, TARGETS.map((t, i) => attach(alice[i]!, vol, t, 'w')));
      const foreign = await raceChecked(d, mallory.map((c, i) => attach(c, vol, TARGETS[i]!, 'w')));
      expect(successes(own), JSON.stringify(own)).toBe(1);
      expectFaults(own, ['VolumeInUse', 'IncorrectState'], /is attached read-write|already attached|cannot be attached/);
      // Another user's race never reaches the volume at all.
      expect(foreign.map((o) => (o.ok ? 'ok' : o.code))).toEqual(['InvalidVolume.NotFound', 'InvalidVolume.NotFound']);
      const winner = TARGETS[own.findIndex((o) => o.ok)]!;
      await settleAndCheck(d.dir);
      expect(disksOf(vol)).toEqual([`${winner.host}/${winner.vm}/xvdf w`]);
      expect(await describeVolume(alice[0]!, vol)).toMatchObject({ status: 'in-use', attachments: [expect.objectContaining({ vmId: winner.vm, vmmHost: winner.host, mode: 'w', status: 'attached' })] });
      await cleanUp(vol);
    }
  });

  it('read-write against read-only: one writer alone, or readers only, never both', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const vol = await newVolume(alice[0]!);
      const modes = TARGETS.map((_, i) => ((i + round) % 2 === 0 ? 'w' : 'r') as 'r' | 'w');
      const out = await raceChecked(d, TARGETS.map((t, i) => attach(alice[i]!, vol, t, modes[i]!)));
      const won = out.flatMap((o, i) => (o.ok ? [modes[i]] : []));
      const readers = modes.filter((m) => m === 'r').length;
      // A writer first shuts out everybody; a reader first lets every reader in and no writer.
      expect(won.join(''), JSON.stringify(out)).toMatch(new RegExp(`^(w|r{${readers}})$`));
      expectFaults(out, ['VolumeInUse', 'IncorrectState'], /attached read-write|attached read-only|cannot be attached/);
      await settleAndCheck(d.dir);
      expect(disksOf(vol)).toHaveLength(won.length);
      await cleanUp(vol);
    }
  });

  it('read-only from 16 clients at once: all succeed, each VM gets its own disk', async () => {
    // Two rounds: each is 32 hypervisor commands, the heaviest race here.
    for (let round = 0; round < 2; round++) {
      const vol = await newVolume(alice[0]!);
      const device = round % 2 ? 'xvdg' : 'sdc';
      const out = await raceChecked(d, TARGETS.map((t, i) => attach(alice[i]!, vol, t, 'r', device)));
      expect(out.filter((o) => !o.ok)).toEqual([]);
      await settleAndCheck(d.dir);
      expect(disksOf(vol)).toEqual(TARGETS.map((t) => `${t.host}/${t.vm}/${device} r`).sort());
      expect(((await describeVolume(alice[0]!, vol)).attachments as XmlRecord[]).length).toBe(TARGETS.length);

      // And every one detached at once, each naming its VM.
      const off = await raceChecked(d, TARGETS.map((t, i) => detach(alice[i]!, vol, t)));
      expect(off.filter((o) => !o.ok)).toEqual([]);
      await settleAndCheck(d.dir);
      expect(disksOf(vol)).toEqual([]);
      expect(await describeVolume(alice[0]!, vol)).toMatchObject({ status: 'available' });
      await alice[0]!.call('DeleteVolume', { volumeId: vol });
    }
  });

  it('two volumes racing for one device of one VM: one gets it', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const vols = [await newVolume(alice[0]!), await newVolume(alice[0]!), await newVolume(alice[0]!)];
      const out = await raceChecked(d, vols.map((v, i) => attach(alice[i]!, v, TARGETS[0]!, i % 2 ? 'r' : 'w', 'xvdh')));
      expect(successes(out), JSON.stringify(out)).toBe(1);
      expectFaults(out, ['InvalidParameterValue', 'VolumeInUse', 'OperationFailed'], /xvdh/);
      await settleAndCheck(d.dir);
      for (const v of vols) await cleanUp(v);
    }
  });
});

describe('racing detaches', () => {
  it('many detaches of one read-write attachment: exactly one detaches', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const vol = await newVolume(alice[0]!);
      await attach(alice[0]!, vol, TARGETS[round]!, 'w')();
      const out = await raceChecked(d, alice.slice(0, 8).map((c, i) => (i % 2 ? detach(c, vol) : detach(c, vol, TARGETS[round]!))));
      expect(successes(out), JSON.stringify(out)).toBe(1);
      // A detach racing the one already running is told to retry (ServiceUnavailable), never given a second success.
      expectFaults(out, ['IncorrectState', 'ServiceUnavailable'], /is detaching|is not attached|is being finished/);
      await settleAndCheck(d.dir);
      expect(disksOf(vol)).toEqual([]);
      expect(await describeVolume(alice[0]!, vol)).toMatchObject({ status: 'available' });
      await alice[0]!.call('DeleteVolume', { volumeId: vol });
    }
  });

  it('detaches against attaches of a shared read-only volume', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const vol = await newVolume(alice[0]!);
      const [a, b, c, e, f, g] = [TARGETS[0]!, TARGETS[1]!, TARGETS[8]!, TARGETS[2]!, TARGETS[9]!, TARGETS[3]!];
      for (const t of [a, b, c]) await attach(alice[0]!, vol, t, 'r')();
      // b stays attached read-only throughout, so the writer must always lose.
      const out = await raceChecked(d, [
        detach(alice[0]!, vol, a),
        detach(alice[1]!, vol, c),
        attach(alice[2]!, vol, e, 'r'),
        attach(alice[3]!, vol, f, 'r'),
        attach(alice[4]!, vol, g, 'w'),
        attach(alice[5]!, vol, a, 'r', 'xvdk'),
      ]);
      const shown = out.map((o) => (o.ok ? 'ok' : o.code));
      expect(shown.slice(0, 4)).toEqual(['ok', 'ok', 'ok', 'ok']);
      expect(shown[4]).toBe('VolumeInUse');
      // Re-attaching a VM that is being detached: refused while its old attachment exists, else fine.
      expect(['ok', 'VolumeInUse']).toContain(shown[5]);
      await settleAndCheck(d.dir);
      const expected = [b, e, f].map((t) => `${t.host}/${t.vm}/xvdf r`);
      if (out[5]!.ok) expected.push(`${a.host}/${a.vm}/xvdk r`);
      expect(disksOf(vol)).toEqual(expected.sort());
      await cleanUp(vol);
    }
  });

  it('detaching the last reader against a new writer and a new reader: never a writer beside a reader', async () => {
    const seen = new Set<string>();
    for (let round = 0; round < ROUNDS + 2; round++) {
      const vol = await newVolume(alice[0]!);
      const [reader, writer, other] = [TARGETS[0]!, TARGETS[9]!, TARGETS[4]!];
      await attach(alice[0]!, vol, reader, 'r')();
      const calls = [detach(alice[0]!, vol, reader), attach(alice[1]!, vol, writer, 'w'), attach(alice[2]!, vol, other, 'r')];
      // Round 0 runs them one by one: detached, then the writer, then a reader refused beside it.
      const out: Outcome[] = round === 0 ? await inOrder(calls) : await raceChecked(d, calls);
      expect(out[0]!.ok).toBe(true);
      expect(out[1]!.ok && out[2]!.ok, JSON.stringify(out)).toBe(false);
      expectFaults(out, ['VolumeInUse']);
      seen.add(out.map((o) => (o.ok ? 'ok' : 'no')).join('/'));
      await settleAndCheck(d.dir);
      await cleanUp(vol);
    }
    expect([...seen]).toContain('ok/ok/no');
  });
});

describe('attach against delete', () => {
  it('either the attach wins (the delete is refused) or the delete wins (the attach is refused)', async () => {
    const outcomes = new Set<string>();
    for (let round = 0; round < ROUNDS + 1; round++) {
      const vol = await newVolume(alice[0]!);
      // Alternate who is sent first, so both orders are exercised.
      const calls = [
        attach(alice[0]!, vol, TARGETS[round]!, 'w'),
        attach(alice[1]!, vol, TARGETS[round + 8]!, 'r'),
        () => alice[2]!.call('DeleteVolume', { volumeId: vol }),
        () => alice[3]!.call('DeleteVolume', { volumeId: vol }),
      ];
      // Rounds 0 and 1 go one by one, so each side is seen to win: the attach first, then the delete first.
      const sent = round % 2 ? calls.reverse() : calls;
      const out = round < 2 ? await inOrder(sent) : await raceChecked(d, sent);
      const ordered = round % 2 ? [...out].reverse() : out;
      const attached = ordered.slice(0, 2).filter((o) => o.ok).length;
      const deleted = ordered.slice(2).filter((o) => o.ok).length;
      expect(attached + deleted, JSON.stringify(ordered)).toBe(1);
      expectFaults(ordered, ['VolumeInUse', 'IncorrectState', 'InvalidVolume.NotFound', 'ServiceUnavailable']);
      await settleAndCheck(d.dir);
      if (deleted) {
        outcomes.add('deleted');
        expect(disksOf(vol)).toEqual([]);
        const gone = await raceChecked(d, [() => describeVolume(alice[0]!, vol)]);
        expect(gone[0]).toMatchObject({ ok: false, code: 'InvalidVolume.NotFound' });
      } else {
        outcomes.add('attached');
        expect(disksOf(vol)).toHaveLength(1);
        await cleanUp(vol);
      }
    }
    expect([...outcomes].sort()).toEqual(['attached', 'deleted']);
  });
});

describe('the invariant checker', () => {
  const hostsim = (...args: string[]) => execFileSync(process.execPath, [join(ROOT, 'dist', 'sim', 'hostsim.js'), '--state', join(d.dir, 'vmm-sim'), ...args]);

  it('notices a hypervisor that disagrees with the metadata, and a file nobody owns', async () => {
    const vol = await newVolume(alice[0]!);
    await attach(alice[0]!, vol, TARGETS[0]!, 'w')();
    await settleAndCheck(d.dir);
    // Behind VBS's back: the disk leaves the VM, and comes back.
    hostsim('xm', 'block-detach', 'vm1', 'xvdf');
    expect(findViolations(d.dir).join('\n')).toMatch(new RegExp(`${vol} is recorded on vm1/xvdf at localhost, but the VM has no such disk`));
    hostsim('xm', 'block-attach', 'vm1', `file:${join(d.dir, 'volumes', `${vol}.img`)}`, 'xvdf', 'w');
    expect(findViolations(d.dir)).toEqual([]);
    hostsim('xm', 'block-attach', 'vm2', `file:${join(d.dir, 'volumes', `${vol}.img`)}`, 'xvdj', 'w!');
    expect(findViolations(d.dir).join('\n')).toMatch(new RegExp(`vm2/xvdj at localhost holds ${vol} with no attachment record`));
    hostsim('xm', 'block-detach', 'vm2', 'xvdj');
    const stray = join(d.dir, 'volumes', 'vol-0123456789abcdef0.img');
    writeFileSync(stray, '');
    expect(findViolations(d.dir)).toContain(`vol-0123456789abcdef0 has a file on local but no row`);
    expect(findViolations(d.dir, { quiet: false })).toEqual([]);
    rmSync(stray);
    expect(findViolations(d.dir)).toEqual([]);
    await cleanUp(vol);
  });
});
