import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest';
import { hostInitiatorName } from '../../../src/core/initiator-name.js';
import { chapUserName } from '../../../src/core/chap.js';
import type { VolumeBackend } from '../../../src/delegates/volume/backend.js';
import { cleanupDirs, GiB, IQN_PREFIX, libiscsiAs, lvmConfig, openLvm, ready, simSite, startTgtd, type ChapAccount, type Tgtd } from './helpers.js';

/**
 * tgt for real: a tgtd of our own on free ports of 127.0.0.1, targets made by
 * the delegate's iscsi.tgt.* patterns, checked from the initiator side with
 * libiscsi. The LVs come from the simulator (no device-mapper here); their
 * backing files are what tgtd serves. Each host logs in with the CHAP
 * account its export named (the front gives it only to that host).
 */
let tgtd: Tgtd;
beforeAll(async () => {
  tgtd = await startTgtd();
});
afterAll(async () => {
  await tgtd?.stop();
});
afterEach(() => {
  tgtd.clear();
  cleanupDirs();
  accounts.clear();
});

/** The CHAP account each host's latest export named, by `<volume> <host>`. */
const accounts = new Map<string, ChapAccount>();
const accountOf = (iqn: string, host: string) => accounts.get(`${iqn.slice(IQN_PREFIX.length + 1)} ${host}`);
async function exportTo(backend: VolumeBackend, volumeId: string, host: string) {
  const exp = await backend.exportVolume(volumeId, host, `proposed-${volumeId}-${host}`.slice(0, 64));
  if (exp.kind === 'iscsi' && exp.chapUser && exp.chapSecret) accounts.set(`${volumeId} ${host}`, { user: exp.chapUser, secret: exp.chapSecret });
  return exp;
}
const anyAccount = () => [...accounts.values()][0];

const VOL = (n: number) => `vol-${n.toString(16).padStart(17, '0')}`;
const show = () => tgtd.tgtadm('--lld', 'iscsi', '--op', 'show', '--mode', 'target');
/** SendTargets discovery as a host's initiator (tgt lists only the targets that admit it). */
// (`-s` logs in to each target to list its LUNs: with the host's account for the first volume it has.)
const discover = (host: string) => libiscsiAs([...accounts.entries()].find(([k]) => k.endsWith(` ${host}`))?.[1], 'iscsi-ls', '-s', '-i', hostInitiatorName(host), `iscsi://${tgtd.portal}`);
/** iscsi-inq as the initiator a host logs in as (libiscsi's own default name when none), with that host's account (or another's: `chap`). */
const inquire = (iqn: string, host?: string, chap?: ChapAccount) =>
  libiscsiAs(chap ?? (host ? accountOf(iqn, host) : anyAccount()), 'iscsi-inq', ...(host ? [`--initiator-name=${hostInitiatorName(host)}`] : []), `iscsi://${tgtd.portal}/${iqn}/1`);

describe('lvm-iscsi exports through a real tgtd', { timeout: 180_000 }, () => {
  it('exports a volume that an initiator can see and inquire, then withdraws it', async () => {
    const site = simSite(8);
    const { backend } = await openLvm(lvmConfig(site, { target: 'tgt', tgtControlPort: tgtd.controlPort, portal: tgtd.portal }));
    await backend.createVolume(VOL(1), 1);
    await ready(backend, VOL(1));
    const iqn = `${IQN_PREFIX}:${VOL(1)}`;
    const exp = await exportTo(backend, VOL(1), 'host-a');
    expect(exp).toEqual({ kind: 'iscsi', portal: tgtd.portal, iqn, lun: 1, initiator: hostInitiatorName('host-a'), chapUser: chapUserName(VOL(1), 'host-a'), chapSecret: `proposed-${VOL(1)}-host-a` });
    expect(await exportTo(backend, VOL(1), 'host-b')).toEqual({ ...exp, initiator: hostInitiatorName('host-b'), chapUser: chapUserName(VOL(1), 'host-b'), chapSecret: `proposed-${VOL(1)}-host-b` });
    expect(show().match(/^Target /gm)).toHaveLength(1);

    const ls = discover('host-a');
    expect(ls.code).toBe(0);
    expect(ls.stdout).toContain(`Target:${iqn} Portal:${tgtd.portal},1`);
    expect(ls.stdout).toMatch(/Lun:1\s+Type:DIRECT_ACCESS /);
    const inq = inquire(iqn, 'host-a');
    expect(inq.code).toBe(0);
    expect(inq.stdout).toContain('Peripheral Device Type:DIRECT_ACCESS');
    const cap = libiscsiAs(accountOf(iqn, 'host-b'), 'iscsi-readcapacity16', `--initiator-name=${hostInitiatorName('host-b')}`, `iscsi://${tgtd.portal}/${iqn}/1`);
    expect(cap.stdout).toContain(`Total size:${GiB}`);

    expect((await backend.listExports()).exports).toEqual([
      { volumeId: VOL(1), vmmHost: 'host-a', kind: 'iscsi', iqn, tid: 1, lun: 1 },
      { volumeId: VOL(1), vmmHost: 'host-b', kind: 'iscsi', iqn, tid: 1, lun: 1 },
    ]);
    await backend.unexportVolume(VOL(1), 'host-a');
    expect(discover('host-b').stdout).toContain(iqn);
    await backend.unexportVolume(VOL(1), 'host-b');
    await backend.unexportVolume(VOL(1), 'host-b');
    expect(show()).toBe('');
    const after = discover('host-b');
    expect(after.stdout).not.toContain(iqn);
    expect(inquire(iqn, 'host-b').code).not.toBe(0);
  });

  it('admits only the initiators of the hosts a volume is exported to, and a detach takes its host off', async () => {
    const site = simSite(8);
    const { backend } = await openLvm(lvmConfig(site, { target: 'tgt', tgtControlPort: tgtd.controlPort, portal: tgtd.portal }));
    await backend.createVolume(VOL(1), 1);
    await ready(backend, VOL(1));
    const iqn = `${IQN_PREFIX}:${VOL(1)}`;
    await exportTo(backend, VOL(1), 'host-a');
    await exportTo(backend, VOL(1), 'host-b');
    await exportTo(backend, VOL(1), 'host-d');
    expect(inquire(iqn, 'host-a').code).toBe(0);
    expect(inquire(iqn, 'host-b').code).toBe(0);
    // Another host's initiator, and libiscsi's default name, are refused at login (with a valid account).
    expect(inquire(iqn, 'host-c').code).not.toBe(0);
    expect(inquire(iqn).code).not.toBe(0);
    expect(show()).not.toMatch(/^\s+ALL$/m);

    // host-a detaches: the target stays for host-b, and host-a is kept out, as the ACL shows.
    expect(await backend.unexportVolume(VOL(1), 'host-a')).toBe(true);
    expect(show()).not.toContain(hostInitiatorName('host-a'));
    expect(show()).toContain(hostInitiatorName('host-b'));
    expect(inquire(iqn, 'host-a').code).not.toBe(0);
    expect(inquire(iqn, 'host-b').code).toBe(0);
    // host-a's account is gone: it admits no one, even from host-b's admitted name.
    expect(show()).not.toContain(chapUserName(VOL(1), 'host-a'));
    expect(inquire(iqn, 'host-b', accountOf(iqn, 'host-a')).code).not.toBe(0);
    // host-b's name with no secret, or a wrong one: refused by tgtd.
    expect(libiscsiAs(undefined, 'iscsi-inq', `--initiator-name=${hostInitiatorName('host-b')}`, `iscsi://${tgtd.portal}/${iqn}/1`).code).not.toBe(0);
    expect(inquire(iqn, 'host-b', { user: chapUserName(VOL(1), 'host-b'), secret: 'not-the-secret-0123456789' }).code).not.toBe(0);
    // host-a's account was bound first: the accounts after it (tgt keeps them in an array) still admit their hosts.
    expect(inquire(iqn, 'host-d').code).toBe(0);
    expect(await backend.unexportVolume(VOL(1), 'host-d')).toBe(true);
    expect(await backend.unexportVolume(VOL(1), 'host-a')).toBe(true);
  });

  it('restores a target tgtd lost with every host it was exported to on its ACL', async () => {
    const site = simSite(8);
    const cfg = lvmConfig(site, { target: 'tgt', tgtControlPort: tgtd.controlPort, portal: tgtd.portal });
    const { backend } = await openLvm(cfg);
    await backend.createVolume(VOL(1), 1);
    await ready(backend, VOL(1));
    const iqn = `${IQN_PREFIX}:${VOL(1)}`;
    await exportTo(backend, VOL(1), 'host-a');
    await exportTo(backend, VOL(1), 'host-b');
    tgtd.clear(); // tgtd restarted: its targets and accounts are gone, the hosts still use them (and their secrets)
    expect(show()).toBe('');
    await openLvm(cfg); // the delegate restores exports when it opens
    expect(inquire(iqn, 'host-a').code).toBe(0);
    expect(inquire(iqn, 'host-b').code).toBe(0);
    expect(inquire(iqn, 'host-c').code).not.toBe(0);
  });

  it('stops admitting everyone on a target made before fencing, at its next export', async () => {
    const site = simSite(8);
    const { backend } = await openLvm(lvmConfig(site, { target: 'tgt', tgtControlPort: tgtd.controlPort, portal: tgtd.portal }));
    await backend.createVolume(VOL(1), 1);
    await ready(backend, VOL(1));
    const iqn = `${IQN_PREFIX}:${VOL(1)}`;
    await exportTo(backend, VOL(1), 'host-a');
    tgtd.tgtadm('--lld', 'iscsi', '--op', 'bind', '--mode', 'target', '--tid', '1', '-I', 'ALL');
    // (With a valid account: what the ACL decides is the point here.)
    expect(inquire(iqn, 'host-c', accountOf(iqn, 'host-a')).code).toBe(0);
    await exportTo(backend, VOL(1), 'host-a');
    expect(inquire(iqn, 'host-c', accountOf(iqn, 'host-a')).code).not.toBe(0);
    expect(inquire(iqn, 'host-a').code).toBe(0);
  });

  it('gives concurrent exports distinct tids from tgtadm\'s own listing, and finishes a half-made target', async () => {
    const site = simSite(8);
    const { backend } = await openLvm(lvmConfig(site, { target: 'tgt', tgtControlPort: tgtd.controlPort, portal: tgtd.portal }));
    // Someone else's target holds tid 1; a crash left ours at tid 2 without its LUN.
    tgtd.tgtadm('--lld', 'iscsi', '--op', 'new', '--mode', 'target', '--tid', '1', '-T', 'iqn.2001-04.com.example:not-ours');
    tgtd.tgtadm('--lld', 'iscsi', '--op', 'new', '--mode', 'target', '--tid', '2', '-T', `${IQN_PREFIX}:${VOL(1)}`);
    const ids = [1, 2, 3, 4];
    for (const n of ids) await backend.createVolume(VOL(n), 1);
    for (const n of ids) await ready(backend, VOL(n));
    await Promise.all(ids.map((n) => exportTo(backend, VOL(n), 'host-a')));
    const exports = (await backend.listExports()).exports;
    expect(exports.find((e) => e.volumeId === VOL(1))?.tid).toBe(2);
    expect(exports.map((e) => e.tid).sort()).toEqual([2, 3, 4, 5]);
    for (const n of ids) expect(inquire(`${IQN_PREFIX}:${VOL(n)}`, 'host-a').code).toBe(0);
    for (const n of ids) await backend.delete(VOL(n));
    expect(show().match(/^Target \d+: (\S+)/gm)).toEqual(['Target 1: iqn.2001-04.com.example:not-ours']);
  });
});

describe('lvm-iscsi exports through a real tgtd, with CHAP turned off by the operator', { timeout: 180_000 }, () => {
  it('admits the exported host by its initiator name alone, names no account, and still keeps other hosts out', async () => {
    const site = simSite(9);
    const { backend } = await openLvm(lvmConfig(site, { target: 'tgt', tgtControlPort: tgtd.controlPort, portal: tgtd.portal, chap: false }));
    await backend.createVolume(VOL(9), 1);
    await ready(backend, VOL(9));
    const iqn = `${IQN_PREFIX}:${VOL(9)}`;
    const exp = await exportTo(backend, VOL(9), 'host-a');
    expect(exp).toEqual({ kind: 'iscsi', portal: tgtd.portal, iqn, lun: 1, initiator: hostInitiatorName('host-a') });
    expect(tgtd.tgtadm('--lld', 'iscsi', '--op', 'show', '--mode', 'account')).not.toContain(VOL(9));
    expect(inquire(iqn, 'host-a', undefined).code).toBe(0);
    expect(inquire(iqn, 'host-b', undefined).code).not.toBe(0);
    expect(await backend.unexportVolume(VOL(9), 'host-a')).toBe(true);
    expect(inquire(iqn, 'host-a', undefined).code).not.toBe(0);
  });
});
