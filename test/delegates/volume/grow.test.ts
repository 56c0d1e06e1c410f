import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CommandCatalog } from '../../../src/commands/catalog.js';
import { CommandRunner } from '../../../src/commands/runner.js';
import { hostInitiatorName } from '../../../src/core/initiator-name.js';
import { silentLogger } from '../../../src/core/log.js';
import { FileBackend } from '../../../src/delegates/volume/file-backend.js';
import { cleanupDirs, COMMANDS, GiB, IQN_PREFIX, ietTargets, libiscsi, libiscsiAs, lvmConfig, openLvm, ready, sim, simSite, startTgtd, type Tgtd } from './helpers.js';

/**
 * GrowVolume on each back end: the file back end's real file; the lvm-iscsi
 * back end's simulated VG (lvextend) with a real tgtd serving the LV, checked
 * from the initiator side with libiscsi, and with the simulated IET.
 */
const VOL = (n: number) => `vol-${n.toString(16).padStart(17, '0')}`;
const MARK = Buffer.from('VBS-GROW-MARK');

function mark(path: string): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, MARK, 0, MARK.length, 0);
  closeSync(fd);
}

function marked(path: string): boolean {
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(MARK.length);
  readSync(fd, buf, 0, MARK.length, 0);
  closeSync(fd);
  return buf.equals(MARK);
}

describe('file back end: GrowVolume', () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'vbs-grow-file-'));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  const backend = (limits = {}) => new FileBackend(join(root, 'volumes'), new CommandRunner(CommandCatalog.fromFile(COMMANDS)), silentLogger, limits);

  it('grows the file in place, keeping what it holds; the same size again is done; never shrinks', async () => {
    const b = backend();
    await b.createVolume(VOL(1), 1);
    await ready(b, VOL(1));
    const path = b.pathOf(VOL(1));
    mark(path);
    expect(await b.growVolume(VOL(1), 2)).toBe(2 * GiB);
    expect(statSync(path).size).toBe(2 * GiB);
    expect(marked(path)).toBe(true);
    expect(await b.growVolume(VOL(1), 2)).toBe(2 * GiB);
    expect(await b.growVolume(VOL(1), 1)).toBe(2 * GiB);
    expect(statSync(path).size).toBe(2 * GiB);
    expect((await b.capacity()).provisionedBytes).toBe(2 * GiB);
  });

  it('refuses a volume it does not hold, and growth past its capacity, changing nothing', async () => {
    const b = backend({ capacityGiB: 3 });
    await expect(b.growVolume(VOL(9), 2)).rejects.toMatchObject({ code: 'InvalidVolume.NotFound' });
    await expect(b.growVolume(VOL(1), 4)).rejects.toMatchObject({ code: 'InsufficientCapacity' });
    expect(statSync(b.pathOf(VOL(1))).size).toBe(2 * GiB);
  });
});

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
});

describe('lvm-iscsi back end: GrowVolume', { timeout: 180_000 }, () => {
  it('lvextend grows the LV, and the exported target serves the new size to an initiator', async () => {
    const site = simSite(8);
    const { backend } = await openLvm(lvmConfig(site, { target: 'tgt', tgtControlPort: tgtd.controlPort, portal: tgtd.portal }));
    await backend.createVolume(VOL(1), 1);
    await ready(backend, VOL(1));
    const lvPath = sim(site.state, 'lvm', 'path', `vbs/${VOL(1)}`).trim();
    mark(lvPath);
    const iqn = `${IQN_PREFIX}:${VOL(1)}`;
    // tgt requires the export's CHAP account: the host logs in with the one the export named.
    const exp = await backend.exportVolume(VOL(1), 'host-a');
    const account = exp.kind === 'iscsi' && exp.chapUser && exp.chapSecret ? { user: exp.chapUser, secret: exp.chapSecret } : undefined;
    const capacity = () => libiscsiAs(account, 'iscsi-readcapacity16', `--initiator-name=${hostInitiatorName('host-a')}`, `iscsi://${tgtd.portal}/${iqn}/1`).stdout;
    expect(capacity()).toContain(`Total size:${GiB}`);

    expect(await backend.growVolume(VOL(1), 3)).toBe(3 * GiB);
    expect((await backend.describe(VOL(1))).sizeBytes).toBe(3 * GiB);
    expect(capacity()).toContain(`Total size:${3 * GiB}`);
    expect(marked(lvPath)).toBe(true);
    // Fencing survives the LUN's renewal: the host is still the only one admitted.
    expect(libiscsi('iscsi-ls', '-s', '-i', hostInitiatorName('host-b'), `iscsi://${tgtd.portal}`).stdout).not.toContain(iqn);

    // Again: nothing to do (the LV and the LUN already serve 3 GiB).
    expect(await backend.growVolume(VOL(1), 3)).toBe(3 * GiB);
    expect(capacity()).toContain(`Total size:${3 * GiB}`);
  });

  it('refuses growth past the VG, an absent volume, and an unexported volume needs no target', async () => {
    const site = simSite(4);
    const { backend } = await openLvm(lvmConfig(site, { target: 'tgt', tgtControlPort: tgtd.controlPort, portal: tgtd.portal }));
    await backend.createVolume(VOL(2), 1);
    await ready(backend, VOL(2));
    await expect(backend.growVolume(VOL(2), 5)).rejects.toMatchObject({ code: 'InsufficientCapacity' });
    expect((await backend.describe(VOL(2))).sizeBytes).toBe(GiB);
    await expect(backend.growVolume(VOL(3), 2)).rejects.toMatchObject({ code: 'InvalidVolume.NotFound' });
    expect(await backend.growVolume(VOL(2), 2)).toBe(2 * GiB);
    expect(tgtd.tgtadm('--lld', 'iscsi', '--op', 'show', '--mode', 'target')).toBe('');
  });

  it('on the simulated IET, the LUN is added again on the grown LV', async () => {
    const site = simSite(8);
    const { backend } = await openLvm(lvmConfig(site));
    await backend.createVolume(VOL(4), 1);
    await ready(backend, VOL(4));
    await backend.exportVolume(VOL(4), 'host-a');
    expect(await backend.growVolume(VOL(4), 2)).toBe(2 * GiB);
    expect((await backend.describe(VOL(4))).sizeBytes).toBe(2 * GiB);
    expect(ietTargets(site.state)).toMatch(new RegExp(`name:${IQN_PREFIX}:${VOL(4)}[\\s\\S]*lun:1 `));
  });
});

describe('hostsim lvextend', () => {
  it('grows an LV keeping its data, and refuses what lvm2 refuses', () => {
    const site = simSite(1);
    sim(site.state, 'lvcreate', '-L', '8m', '-n', 'a', 'vbs');
    const path = sim(site.state, 'lvm', 'path', 'vbs/a').trim();
    mark(path);
    expect(sim(site.state, 'lvextend', '-L', '16m', 'vbs/a')).toMatch(/successfully resized/);
    expect(statSync(path).size).toBe(16 * 1024 ** 2);
    expect(marked(path)).toBe(true);
    for (const [args, message] of [
      [['-L', '8m', 'vbs/a'], /not larger than existing size/],
      [['-L', '16m', 'vbs/a'], /matches existing size/],
      [['-L', '4g', 'vbs/a'], /Insufficient free space/],
      [['-L', '32m', 'vbs/nope'], /Failed to find logical volume/],
    ] as const) {
      expect(() => sim(site.state, 'lvextend', ...args)).toThrow(message);
    }
  });
});
