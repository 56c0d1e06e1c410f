import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommandCatalog } from '../../../src/commands/catalog.js';
import type { VolumeBackend } from '../../../src/delegates/volume/backend.js';
import { useCephCluster, type CephCluster } from '../../ceph/cluster.js';
import { COMMANDS, eventually, GiB, ready, ROOT } from './helpers.js';
import { openRbd, poolContents, rbdConfig, SNAP, VOL } from './rbd-helpers.js';

/**
 * Every command of every multi-command operation of the rbd back end, broken
 * in turn on a real cluster: failing without acting (`fail`), acting then
 * failing (`fail-after`), acting then hanging past its timeout (`hang-after`,
 * an unknown outcome). After each, the pool holds nothing half-made, every
 * object is whole or absent (or in error, for a create the front then
 * deletes), and asking again completes the operation.
 */
const WRAPPER = join(ROOT, 'test', 'delegates', 'volume', 'fault-wrapper.mjs');
/** rbd takes about a second here; a hung one is stopped after this. */
const TIMEOUT_MS = 15_000;
type Mode = 'fail' | 'fail-after' | 'hang-after';

let c: CephCluster;
let faults: string;
let plain: VolumeBackend;
/** maxCloneDepth 0: every volume from a snapshot is flattened, so flatten is exercised too. */
let flattening: VolumeBackend;
beforeAll(async () => {
  c = await useCephCluster();
  faults = join(mkdtempSync(join(tmpdir(), 'vbs-rbd-faults-')), 'f');
  mkdirSync(faults);
  const catalog = CommandCatalog.fromFile(COMMANDS);
  const wrapped = KEYS.flatMap((key) => [`${key} = ${process.execPath} ${WRAPPER} ${faults} ${key} ${catalog.pattern(key).text}`, `${key}.timeoutMs = ${TIMEOUT_MS}`]).join('\n');
  plain = (await openRbd(rbdConfig(c), wrapped)).backend;
  flattening = (await openRbd(rbdConfig(c, { maxCloneDepth: 0 }), wrapped)).backend;
}, 600_000);
afterAll(async () => {
  await c?.release();
  if (faults) rmSync(join(faults, '..'), { recursive: true, force: true });
});

const KEYS = [
  'volume.rbd.create',
  'volume.rbd.rename',
  'volume.rbd.clone',
  'volume.rbd.resize',
  'volume.rbd.flatten',
  'volume.rbd.snap-create',
  'volume.rbd.snap-protect',
  'volume.rbd.rm',
  'volume.rbd.snap-unprotect',
  'volume.rbd.snap-rm',
  'volume.rbd.snap-rename',
] as const;

let next = 0x100;
const fresh = () => ++next;

/** Waits for a create to leave `creating`. */
async function settled(b: VolumeBackend, id: string): Promise<string> {
  return eventually(async () => {
    const s = (await b.describe(id)).state;
    return s === 'creating' ? undefined : s;
  });
}

async function attempt(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return err;
  }
}

interface Scenario {
  /** The keys broken in turn, and in which modes. */
  keys: readonly string[];
  modes: readonly Mode[];
  backend: () => VolumeBackend;
  /** Makes what the operation needs; returns the ids. */
  setup(b: VolumeBackend, n: number): Promise<void>;
  /** The operation; for a create, the id it makes. */
  act(b: VolumeBackend, n: number): Promise<unknown>;
  made?: (n: number) => string;
  /** What holds once the operation is complete. */
  check(b: VolumeBackend, n: number): Promise<void>;
  /** Everything the scenario made, to delete (children first). */
  all(n: number): string[];
}

const ALL: readonly Mode[] = ['fail', 'fail-after', 'hang-after'];
const QUICK: readonly Mode[] = ['fail', 'fail-after'];

async function volumeWithSnapshot(b: VolumeBackend, n: number): Promise<void> {
  await b.createVolume(VOL(n), 1);
  await ready(b, VOL(n));
  await b.createSnapshot(SNAP(n), VOL(n));
  await ready(b, SNAP(n));
}

const SCENARIOS: Record<string, Scenario> = {
  'create a blank volume': {
    keys: ['volume.rbd.create', 'volume.rbd.rename'],
    modes: ALL,
    backend: () => plain,
    setup: async () => undefined,
    act: (b, n) => b.createVolume(VOL(n), 1),
    made: (n) => VOL(n),
    check: async (b, n) => expect(await b.describe(VOL(n))).toMatchObject({ state: 'ready', sizeBytes: GiB }),
    all: (n) => [VOL(n)],
  },
  'create a volume from a snapshot (a clone, grown and flattened)': {
    keys: ['volume.rbd.clone', 'volume.rbd.resize', 'volume.rbd.flatten', 'volume.rbd.rename'],
    modes: ALL,
    backend: () => flattening,
    setup: volumeWithSnapshot,
    act: (b, n) => b.createVolume(VOL(n + 0x10000), 2, SNAP(n)),
    made: (n) => VOL(n + 0x10000),
    check: async (b, n) => expect(await b.describe(VOL(n + 0x10000))).toMatchObject({ state: 'ready', sizeBytes: 2 * GiB }),
    all: (n) => [VOL(n + 0x10000), SNAP(n), VOL(n)],
  },
  'take a snapshot': {
    keys: ['volume.rbd.snap-create', 'volume.rbd.snap-protect'],
    modes: ALL,
    backend: () => plain,
    setup: async (b, n) => {
      await b.createVolume(VOL(n), 1);
      await ready(b, VOL(n));
    },
    act: (b, n) => b.createSnapshot(SNAP(n), VOL(n)),
    made: (n) => SNAP(n),
    check: async (b, n) => expect(await b.describe(SNAP(n))).toMatchObject({ state: 'ready', sizeBytes: GiB }),
    all: (n) => [SNAP(n), VOL(n)],
  },
  'delete a volume': {
    keys: ['volume.rbd.rm'],
    modes: ALL,
    backend: () => plain,
    setup: async (b, n) => {
      await b.createVolume(VOL(n), 1);
      await ready(b, VOL(n));
    },
    act: (b, n) => b.delete(VOL(n)),
    check: async (b, n) => expect((await b.describe(VOL(n))).state).toBe('absent'),
    all: () => [],
  },
  'delete a volume that has a snapshot (kept as gone.)': {
    keys: ['volume.rbd.rename'],
    modes: QUICK,
    backend: () => plain,
    setup: volumeWithSnapshot,
    act: (b, n) => b.delete(VOL(n)),
    check: async (b, n) => {
      expect((await b.describe(VOL(n))).state).toBe('absent');
      expect((await b.describe(SNAP(n))).state).toBe('ready');
    },
    all: (n) => [SNAP(n)],
  },
  'delete a snapshot': {
    keys: ['volume.rbd.snap-unprotect', 'volume.rbd.snap-rm'],
    modes: ALL,
    backend: () => plain,
    setup: volumeWithSnapshot,
    act: (b, n) => b.delete(SNAP(n)),
    check: async (b, n) => expect((await b.describe(SNAP(n))).state).toBe('absent'),
    all: (n) => [VOL(n)],
  },
  'delete a snapshot a clone reads (kept as gone.), then the clone (the sweep)': {
    keys: ['volume.rbd.snap-rename', 'volume.rbd.snap-unprotect', 'volume.rbd.snap-rm'],
    modes: QUICK,
    backend: () => plain,
    setup: async (b, n) => {
      await volumeWithSnapshot(b, n);
      await b.createVolume(VOL(n + 0x10000), 1, SNAP(n));
      await ready(b, VOL(n + 0x10000));
    },
    act: async (b, n) => {
      await b.delete(SNAP(n));
      await b.delete(VOL(n + 0x10000));
    },
    check: async (b, n) => {
      expect((await b.describe(SNAP(n))).state).toBe('absent');
      expect((await b.describe(VOL(n + 0x10000))).state).toBe('absent');
    },
    all: (n) => [VOL(n)],
  },
};

describe('rbd back end: each step failed', { timeout: 240_000 }, () => {
  for (const [name, s] of Object.entries(SCENARIOS)) {
    for (const key of s.keys) {
      // Hanging costs a timeout each: the first key of each operation hangs, every key fails both ways.
      for (const mode of s.modes.filter((m) => m !== 'hang-after' || key === s.keys[0])) {
        it(`${name}: ${key} ${mode}`, async () => {
          const b = s.backend();
          const n = fresh();
          // What other cases left, if one failed: each case answers only for its own objects.
          const before = await poolContents(c);
          await s.setup(b, n);
          writeFileSync(join(faults, key), mode);
          const err = await attempt(s.act(b, n));
          const made = s.made?.(n);
          const state = made && !err ? await settled(b, made) : undefined;
          // The fault was taken: the step really ran.
          expect(existsSync(join(faults, key))).toBe(false);
          // Nothing half-made under a temporary name once the operation has ended.
          expect((await poolContents(c)).filter((x) => x.startsWith('part.') && !before.includes(x))).toEqual([]);
          // A command that acted before failing, or hung, is seen done: no failure at all.
          if (mode !== 'fail') expect({ err, state: state ?? 'ready' }).toMatchObject({ err: undefined, state: 'ready' });
          // Asking again completes it (a failed create is deleted first, as the front's undo does).
          if (made && (err || state === 'error')) await b.delete(made);
          if (err || state === 'error') await s.act(b, n);
          if (made) await ready(b, made);
          await s.check(b, n);
          for (const id of s.all(n)) await b.delete(id);
          expect(await poolContents(c)).toEqual(before);
        });
      }
    }
  }
});

afterAll(() => {
  // Faults left untaken would mean a step never ran.
  if (faults && existsSync(faults)) expect(readdirSync(faults).filter((f) => !f.startsWith('.'))).toEqual([]);
});
