import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CommandCatalog } from '../../../src/commands/catalog.js';
import { VbsError } from '../../../src/core/errors.js';
import type { VolumeBackend } from '../../../src/delegates/volume/backend.js';
import { parseIetVolume } from '../../../src/delegates/volume/iscsi-targets.js';
import { cleanupDirs, COMMANDS, eventually, IQN_PREFIX, ietTargets, lvmConfig, lvNames, openLvm, ready, ROOT, sim, simSite, tempDir, type Site } from './helpers.js';
import { faultOf } from '../../fault-of.js';

/**
 * Every command of every multi-command operation of the lvm-iscsi back end,
 * broken in turn: failing without acting, acting then failing, acting then
 * hanging past its timeout (an unknown outcome). After each, the host holds
 * nothing half-made, and calling the operation again completes it.
 *
 * Faults come from test/delegates/volume/fault-wrapper.mjs, put in front of
 * each pattern's simulator variant; one fault file breaks one run of one key.
 */
afterEach(cleanupDirs);

const VOL = (n: number) => `vol-${n.toString(16).padStart(17, '0')}`;
const SNAP = (n: number) => `snap-${n.toString(16).padStart(17, '0')}`;
const WRAPPER = join(ROOT, 'test', 'delegates', 'volume', 'fault-wrapper.mjs');
/** Long enough for two node processes on a loaded machine; a dd chunk gets longer still. */
const TIMEOUT_MS = 10_000;
const COPY_TIMEOUT_MS = 60_000;

type Mode = 'fail' | 'fail-after' | 'hang-after';

/** Keys whose `.sim` variant runs behind the fault wrapper. */
const FAULTABLE = [
  'volume.lvm.create',
  'volume.lvm.snapshot',
  'volume.lvm.copy',
  'volume.lvm.rename',
  'volume.lvm.remove',
  'iscsi.iet.add-target',
  'iscsi.iet.add-lun',
  'iscsi.iet.remove-lun',
  'iscsi.iet.remove-target',
];

function faultyCommands(faultDir: string, keys: readonly string[] = FAULTABLE): string {
  const catalog = CommandCatalog.fromFile(COMMANDS);
  return keys
    .flatMap((key) => [
      `${key}.sim = <node> ${WRAPPER} ${faultDir} ${key} ${catalog.pattern(key, 'sim').text}`,
      `${key}.timeoutMs = ${key === 'volume.lvm.copy' ? COPY_TIMEOUT_MS : TIMEOUT_MS}`,
    ])
    .join('\n');
}

interface Rig {
  site: Site;
  backend: VolumeBackend;
  inject(key: string, mode: Mode): void;
  /** The fault was taken by a run (so the step was really exercised). */
  taken(key: string): boolean;
}

async function rig(sizeGiB = 16): Promise<Rig> {
  const site = simSite(sizeGiB);
  const faults = join(tempDir('vbs-faults-'), 'f');
  mkdirSync(faults);
  const { backend } = await openLvm(lvmConfig(site, { copyChunkMiB: 1024 }), faultyCommands(faults));
  return {
    site,
    backend,
    inject: (key, mode) => writeFileSync(join(faults, key), mode),
    taken: (key) => !existsSync(join(faults, key)) && readdirSync(faults).some((f) => f.startsWith(`.${key}.`)),
  };
}

/** Waits for a background create to end; its final state. */
async function settled(backend: VolumeBackend, id: string): Promise<string> {
  return eventually(async () => {
    const s = (await backend.describe(id)).state;
    return s === 'creating' ? undefined : s;
  });
}

function ourTargets(state: string) {
  return parseIetVolume(ietTargets(state)).filter((t) => t.iqn.startsWith(`${IQN_PREFIX}:`));
}

/** Nothing half-made: no copy or cow LV, and every target of ours whole (LUN 1 on its volume's LV). */
function expectNothingHalfMade(state: string): void {
  expect(lvNames(state).filter((n) => n.startsWith('part.') || n.startsWith('cow.'))).toEqual([]);
  for (const t of ourTargets(state)) {
    const volumeId = t.iqn.slice(IQN_PREFIX.length + 1);
    expect(t.luns).toEqual([{ lun: 1, path: sim(state, 'lvm', 'path', `vbs/${volumeId}`).trim() }]);
  }
}

/** Whether the step's effect is in place after the command ran (hang-after, fail-after) or not (fail). */
const acted = (mode: Mode) => mode !== 'fail';

/**
 * Every step is broken by `fail` and most by `fail-after` (acted, then said
 * it failed); `hang-after` (acted, then timed out), which costs a timeout
 * each, goes through the same check and is tried on one step per operation.
 */
type Plan = readonly (readonly [key: string, modes: readonly Mode[]])[];
describe('ExportVolume / UnexportVolume are ensure operations', { timeout: 900_000 }, () => {
  it('export: each step broken in turn leaves no half-made target, and export again completes it', async () => {
    const r = await rig();
    await r.backend.createVolume(VOL(1), 1);
    await ready(r.backend, VOL(1));
    const iqn = `${IQN_PREFIX}:${VOL(1)}`;
    const plan: Plan = [
      ['iscsi.iet.add-target', ['fail', 'fail-after']],
      ['iscsi.iet.add-lun', ['fail', 'fail-after', 'hang-after']],
    ];
    for (const [key, modes] of plan) {
      for (const mode of modes) {
        r.inject(key, mode);
        const exported = r.backend.exportVolume(VOL(1), 'host-a');
        if (acted(mode)) {
          // The command's outcome was checked in the target listing: done.
          expect(await exported).toEqual({ kind: 'iscsi', portal: '127.0.0.1:3260', iqn, lun: 1 });
        } else {
          expect((await faultOf(exported)).message).toContain(`${key} exited with 1`);
          expect(ourTargets(r.site.state)).toEqual([]);
          expect((await r.backend.listExports()).exports).toEqual([]);
          await r.backend.exportVolume(VOL(1), 'host-a');
        }
        expect(r.taken(key)).toBe(true);
        expectNothingHalfMade(r.site.state);
        expect(ourTargets(r.site.state).map((t) => t.iqn)).toEqual([iqn]);
        expect((await r.backend.listExports()).exports.map((e) => e.vmmHost)).toEqual(['host-a']);
        await r.backend.unexportVolume(VOL(1), 'host-a');
        expect(ourTargets(r.site.state)).toEqual([]);
      }
    }
  });

  it('unexport: each step broken in turn is finished by unexport again', async () => {
    const r = await rig();
    await r.backend.createVolume(VOL(1), 1);
    await ready(r.backend, VOL(1));
    const plan: Plan = [
      ['iscsi.iet.remove-lun', ['fail', 'fail-after']],
      ['iscsi.iet.remove-target', ['fail', 'hang-after']],
    ];
    for (const [key, modes] of plan) {
      for (const mode of modes) {
        await r.backend.exportVolume(VOL(1), 'host-a');
        r.inject(key, mode);
        const unexported = r.backend.unexportVolume(VOL(1), 'host-a');
        if (acted(mode)) await unexported;
        else {
          expect((await faultOf(unexported)).message).toContain(`${key} exited with 1`);
          // Still recorded as used by host-a: a restart would put the target back, not lose it.
          expect((await r.backend.listExports()).exports.map((e) => e.vmmHost)).toEqual(['host-a']);
          await r.backend.unexportVolume(VOL(1), 'host-a');
        }
        expect(r.taken(key)).toBe(true);
        expect(ourTargets(r.site.state)).toEqual([]);
        expect(await r.backend.listExports()).toEqual({ tracked: true, exports: [] });
      }
    }
  });
});

describe('DeleteObject is an ensure operation', { timeout: 900_000 }, () => {
  it('deleting an exported volume: each step broken in turn, delete again finishes it', async () => {
    const r = await rig();
    let n = 0;
    const plan: Plan = [
      ['iscsi.iet.remove-lun', ['fail']],
      ['iscsi.iet.remove-target', ['fail']],
      ['volume.lvm.remove', ['fail', 'fail-after', 'hang-after']],
    ];
    for (const [key, modes] of plan) {
      for (const mode of modes) {
        const id = VOL(++n);
        await r.backend.createVolume(id, 1);
        await ready(r.backend, id);
        await r.backend.exportVolume(id, 'host-a');
        r.inject(key, mode);
        const deleted = r.backend.delete(id);
        if (acted(mode)) expect(await deleted).toBe(true);
        else {
          expect((await faultOf(deleted)).message).toContain(`${key} exited with 1`);
          expect(await r.backend.delete(id)).toBe(true);
        }
        expect(r.taken(key)).toBe(true);
        expect(lvNames(r.site.state)).toEqual([]);
        expect(ourTargets(r.site.state)).toEqual([]);
        expect(await r.backend.listExports()).toEqual({ tracked: true, exports: [] });
        expect(await r.backend.delete(id)).toBe(false);
      }
    }
  });
});

describe('CreateVolume and CreateSnapshot: timed-out steps are verified, failed ones undone', { timeout: 900_000 }, () => {
  it('a blank volume whose lvcreate failed is absent-or-error with nothing left; one whose lvcreate acted is ready', async () => {
    const r = await rig();
    let n = 0;
    for (const mode of ['fail', 'fail-after', 'hang-after'] as const) {
      const id = VOL(++n);
      r.inject('volume.lvm.create', mode);
      await r.backend.createVolume(id, 1);
      const state = await settled(r.backend, id);
      expect(r.taken('volume.lvm.create')).toBe(true);
      if (acted(mode)) expect(state).toBe('ready');
      else {
        expect(state).toBe('error');
        expect(lvNames(r.site.state)).not.toContain(id);
        await r.backend.createVolume(id, 1);
        await ready(r.backend, id);
      }
      expect(lvNames(r.site.state)).toContain(id);
      expectNothingHalfMade(r.site.state);
    }
  });

  it('a snapshot: each of its commands broken in turn leaves no part./cow. LV, and creating it again completes it', async () => {
    const r = await rig();
    await r.backend.createVolume(VOL(1), 1);
    await ready(r.backend, VOL(1));
    // lvcreate -s (the point in time), lvcreate (the copy), dd, lvremove (of the cow), lvrename.
    const plan: Plan = [
      ['volume.lvm.snapshot', ['fail', 'hang-after']],
      ['volume.lvm.create', ['fail']],
      ['volume.lvm.copy', ['fail']],
      ['volume.lvm.remove', ['fail']],
      ['volume.lvm.rename', ['fail', 'fail-after']],
    ];
    for (const [key, modes] of plan) {
      for (const mode of modes) {
        r.inject(key, mode);
        const started = await r.backend.createSnapshot(SNAP(1), VOL(1)).then(
          () => true,
          (err: unknown) => {
            // Only the lvcreate -s runs before the answer.
            expect(key).toBe('volume.lvm.snapshot');
            expect((err as VbsError).message).toContain(`${key} exited with 1`);
            return false;
          },
        );
        const state = started ? await settled(r.backend, SNAP(1)) : 'absent';
        expect(r.taken(key)).toBe(true);
        // A dd that did not succeed cannot be told whole: the copy is undone, never assumed done.
        const expected = acted(mode) && key !== 'volume.lvm.copy' ? 'ready' : started ? 'error' : 'absent';
        expect(state).toBe(expected);
        expectNothingHalfMade(r.site.state);
        if (state !== 'ready') {
          expect(lvNames(r.site.state)).toEqual([VOL(1)]);
          if (state === 'error') await r.backend.delete(SNAP(1)); // what the front does with a failed copy
          await r.backend.createSnapshot(SNAP(1), VOL(1));
          await ready(r.backend, SNAP(1));
        }
        expect(lvNames(r.site.state)).toEqual([SNAP(1), VOL(1)]);
        expect(await r.backend.delete(SNAP(1))).toBe(true);
      }
    }
  });

  it('a volume from a snapshot: each of its commands broken in turn, creating it again completes it', async () => {
    const r = await rig();
    await r.backend.createVolume(VOL(1), 1);
    await ready(r.backend, VOL(1));
    await r.backend.createSnapshot(SNAP(1), VOL(1));
    await ready(r.backend, SNAP(1));
    let n = 1;
    const plan: Plan = [
      ['volume.lvm.create', ['fail']],
      ['volume.lvm.copy', ['fail']],
      ['volume.lvm.rename', ['fail', 'fail-after']],
    ];
    for (const [key, modes] of plan) {
      for (const mode of modes) {
        const id = VOL(++n);
        r.inject(key, mode);
        await r.backend.createVolume(id, 1, SNAP(1));
        const state = await settled(r.backend, id);
        expect(r.taken(key)).toBe(true);
        expect(state).toBe(acted(mode) && key !== 'volume.lvm.copy' ? 'ready' : 'error');
        expectNothingHalfMade(r.site.state);
        if (state !== 'ready') {
          expect(lvNames(r.site.state)).not.toContain(id);
          await r.backend.createVolume(id, 1, SNAP(1));
          await ready(r.backend, id);
        }
        expect(await r.backend.delete(id)).toBe(true);
        expect(lvNames(r.site.state)).toEqual([SNAP(1), VOL(1)]);
      }
    }
  });
});

describe('starting the lvm-iscsi back end', { timeout: 120_000 }, () => {
  // The chaos soak killed an lvremove while a restarted delegate tidied up: it
  // exited, was restarted into the same tidy-up, and its supervisor gave up.
  it('tries a tidy-up command that failed once again, instead of failing the start', async () => {
    const site = simSite(8);
    sim(site.state, 'lvcreate', '-L', '8m', '-n', `part.${VOL(31)}`, 'vbs');
    const faults = join(tempDir('vbs-faults-'), 'f');
    mkdirSync(faults);
    writeFileSync(join(faults, 'volume.lvm.remove'), 'fail');
    await openLvm(lvmConfig(site), faultyCommands(faults));
    expect(existsSync(join(faults, 'volume.lvm.remove'))).toBe(false); // the fault was taken
    expect(lvNames(site.state)).not.toContain(`part.${VOL(31)}`);
  });
});
