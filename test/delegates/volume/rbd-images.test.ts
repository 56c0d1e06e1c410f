import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommandCatalog } from '../../../src/commands/catalog.js';
import type { VolumeBackend } from '../../../src/delegates/volume/backend.js';
import type { ImportTerms } from '../../../src/delegates/volume/image-intake.js';
import { useCephCluster, type CephCluster } from '../../ceph/cluster.js';
import { VbsError } from '../../../src/core/errors.js';
import { runSeed, sampleOf } from '../../sampling.js';
import { COMMANDS, GiB, ready, ROOT } from './helpers.js';
import { hasPattern, openRbd, poolContents, rbdConfig, SNAP, VOL, writePattern } from './rbd-helpers.js';

const run = promisify(execFile);

/**
 * Images on the rbd back end (docs/images.md), on the real test cluster in a
 * pool of this file's own: an upload becomes a protected RBD snapshot of an
 * image with no volume (`gone.<snap-id>`), volumes from it are clones, and a
 * snapshot or a volume is exported back as raw or qcow2. Every failure leaves
 * nothing in the pool or the staging folder; so does a restart mid-import.
 */
const MiB = 1024 ** 2;
const WRAPPER = join(ROOT, 'test', 'delegates', 'volume', 'fault-wrapper.mjs');
const FAULT_KEYS = ['volume.rbd.import', 'volume.rbd.rename', 'volume.rbd.snap-create', 'volume.rbd.snap-protect'] as const;
/** rbd takes about a second here; a hung one is stopped after this. */
const FAULT_TIMEOUT_MS = 15_000;
/** Fault cases tried per run (of nine). */
const FAULT_SAMPLE = 3;

let c: CephCluster;
let dir: string;
let staging: string;
let faults: string;
let b: VolumeBackend;

beforeAll(async () => {
  c = await useCephCluster();
  dir = mkdtempSync(join(tmpdir(), 'vbs-rbd-images-'));
  staging = join(dir, 'staging');
  faults = join(dir, 'faults');
  mkdirSync(faults);
  // Every step of an import goes through the fault wrapper; with no fault file it runs the command as it is.
  const catalog = CommandCatalog.fromFile(COMMANDS);
  const wrapped = FAULT_KEYS.flatMap((key) => [`${key} = ${process.execPath} ${WRAPPER} ${faults} ${key} ${catalog.pattern(key).text}`, `${key}.timeoutMs = ${FAULT_TIMEOUT_MS}`]).join('\n');
  b = (await openRbd(rbdConfig(c, { stagingDir: staging }), wrapped)).backend;
}, 600_000);
afterAll(async () => {
  await c?.release();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

let next = 0x500;
const fresh = () => ++next;

function terms(over: Partial<ImportTerms> = {}): ImportTerms {
  return { format: 'raw', maxBytes: 64 * MiB, idleMs: 30_000, ...over };
}

function upload(data: Buffer): Readable {
  return Readable.from([data.subarray(0, data.length >> 1), data.subarray(data.length >> 1)]);
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const leftovers = () => readdirSync(staging);

async function attempt(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return err;
  }
}

/** The fault code of what `attempt` caught (undefined: no fault, or not a VbsError). */
const faultOf = (err: unknown) => (err instanceof VbsError ? err.code : undefined);

async function exported(id: string, format: 'raw' | 'qcow2'): Promise<Buffer> {
  const { body, length } = await b.openImage!(id, format);
  const data = await buffer(body);
  expect(data.length).toBe(length);
  return data;
}

describe('image import and export on the rbd back end', { timeout: 240_000 }, () => {
  it('imports a raw image as a protected snapshot of an image with no volume, exported back byte for byte', async () => {
    const n = fresh();
    const data = randomBytes(5 * MiB + 123);
    expect(await b.importImage!(SNAP(n), upload(data), terms({ sha256: sha256(data), length: data.length }))).toBe(data.length);
    expect(await b.describe(SNAP(n))).toEqual({ id: SNAP(n), state: 'ready', sizeBytes: data.length, progress: 100 });
    expect(await poolContents(c)).toEqual([`gone.${SNAP(n)}`, `gone.${SNAP(n)}@${SNAP(n)}`]);
    expect((await b.list()).map((o) => o.id)).toEqual([SNAP(n)]);
    expect(leftovers()).toEqual([]);
    expect((await exported(SNAP(n), 'raw')).equals(data)).toBe(true);
    expect(leftovers()).toEqual([]);
    // The same id again is refused: it has data.
    expect(faultOf(await attempt(b.importImage!(SNAP(n), upload(data), terms())))).toBe('IncorrectState');
    expect(await b.delete(SNAP(n))).toBe(true);
    expect(await poolContents(c)).toEqual([]);
  });

  it('volumes from an image are O(1) clones holding its data, independent of each other; the image outlives its deletion while they read it', async () => {
    const n = fresh();
    const data = randomBytes(2 * MiB);
    await b.importImage!(SNAP(n), upload(data), terms());
    const vols = [0, 1, 2].map((i) => VOL(n * 0x100 + i));
    await Promise.all(vols.map((v) => b.createVolume(v, 1, SNAP(n))));
    for (const v of vols) await ready(b, v);
    for (const v of vols) {
      const info = JSON.parse(await c.rbd('info', '--format', 'json', `${c.pool}/${v}`)) as { size: number; parent?: { image: string; snapshot: string } };
      expect(info).toMatchObject({ size: GiB, parent: { image: `gone.${SNAP(n)}`, snapshot: SNAP(n) } });
    }
    // A volume's export: its whole GiB, the image at its start.
    const vol = await exported(vols[0]!, 'raw');
    expect(vol.length).toBe(GiB);
    expect(vol.subarray(0, data.length).equals(data)).toBe(true);
    expect(vol.subarray(data.length, data.length + MiB).equals(Buffer.alloc(MiB))).toBe(true);
    await writePattern(c, vols[1]!, 0x77, 0);
    expect(await hasPattern(c, vols[1]!, 0x77, 0)).toBe(true);
    expect(await hasPattern(c, vols[2]!, 0x77, 0)).toBe(false);
    expect((await exported(SNAP(n), 'raw')).equals(data)).toBe(true);
    // EBS order: the image's snapshot goes from the user's view, its data stays for the clones.
    expect(await b.delete(SNAP(n))).toBe(true);
    expect((await b.list()).map((o) => o.id)).toEqual(vols);
    expect(await poolContents(c)).toEqual([...vols, `gone.${SNAP(n)}`, `gone.${SNAP(n)}@gone.${SNAP(n)}`].sort());
    for (const v of vols) expect(await b.delete(v)).toBe(true);
    expect(await poolContents(c)).toEqual([]);
  });

  it('a qcow2 is made raw on the way in; export as qcow2 gives an image qemu-img reads back to the same bytes', async () => {
    const n = fresh();
    const data = randomBytes(3 * MiB);
    const raw = join(dir, 'q.raw');
    const qcow2 = join(dir, 'q.qcow2');
    writeFileSync(raw, data);
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, qcow2]);
    expect(await b.importImage!(SNAP(n), upload(readFileSync(qcow2)), terms({ format: 'qcow2' }))).toBe(data.length);
    expect((await exported(SNAP(n), 'raw')).equals(data)).toBe(true);
    const q = await exported(SNAP(n), 'qcow2');
    const out = join(dir, 'q.out.qcow2');
    writeFileSync(out, q);
    expect((JSON.parse((await run('qemu-img', ['info', '--output=json', out])).stdout) as { format: string }).format).toBe('qcow2');
    const back = join(dir, 'q.back.raw');
    await run('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', out, back]);
    expect(readFileSync(back).equals(data)).toBe(true);
    expect(leftovers()).toEqual([]);
    expect(await b.delete(SNAP(n))).toBe(true);
    expect(await poolContents(c)).toEqual([]);
  });

  it('a checksum that differs, an image past the limit, an upload cut midway and a lying format keep nothing', async () => {
    const data = randomBytes(2 * MiB);
    const n = fresh();
    expect(faultOf(await attempt(b.importImage!(SNAP(n), upload(data), terms({ sha256: '0'.repeat(64) }))))).toBe('InvalidParameterValue');
    expect(faultOf(await attempt(b.importImage!(SNAP(n), upload(data), terms({ maxBytes: MiB }))))).toBe('RequestTooLarge');
    const cut = new PassThrough();
    const cutImport = attempt(b.importImage!(SNAP(n), cut, terms({ length: 4 * MiB })));
    cut.write(data);
    cut.destroy(new Error('connection reset'));
    expect(faultOf(await cutImport)).toBe('RequestTimeout');
    expect(faultOf(await attempt(b.importImage!(SNAP(n), upload(data), terms({ format: 'qcow2' }))))).toBe('InvalidParameterValue');
    expect(await b.describe(SNAP(n))).toEqual({ id: SNAP(n), state: 'absent' });
    expect(await poolContents(c)).toEqual([]);
    expect(leftovers()).toEqual([]);
    // Hostile ids never reach a command.
    expect(faultOf(await attempt(b.openImage!('snap-../../etc', 'raw')))).toBe('InvalidSnapshot.NotFound');
  });

  // Each step of an import broken in turn: nine cases of 15–40 s each on a loaded machine, so a
  // run samples three by its seed (test/sampling.ts); over runs every one is tried.
  const CASES = FAULT_KEYS.flatMap((key) => (key === 'volume.rbd.import' ? (['fail', 'fail-after', 'hang-after'] as const) : (['fail', 'fail-after'] as const)).map((mode) => ({ key, mode })));
  for (const { key, mode } of sampleOf(CASES, FAULT_SAMPLE, 'rbd image import faults', runSeed())) {
    it(`${key} broken (${mode}): the import is whole or leaves nothing, and asking again makes it`, async () => {
      const n = fresh();
      const data = randomBytes(MiB + 7);
      writeFileSync(join(faults, key), mode);
      const err = await attempt(b.importImage!(SNAP(n), upload(data), terms()));
      rmSync(join(faults, key), { force: true });
      if (err) {
        expect(faultOf(err), String(err)).toBe('OperationFailed');
        expect(await b.describe(SNAP(n))).toEqual({ id: SNAP(n), state: 'absent' });
        expect(await poolContents(c)).toEqual([]);
        await b.importImage!(SNAP(n), upload(data), terms());
      } else {
        // An ensure step whose command acted and then failed: looked at again, it was done.
        expect(mode).toBe('fail-after');
        expect(key).not.toBe('volume.rbd.import');
      }
      expect(await b.describe(SNAP(n))).toMatchObject({ state: 'ready', sizeBytes: data.length });
      expect((await exported(SNAP(n), 'raw')).equals(data)).toBe(true);
      expect(leftovers()).toEqual([]);
      expect(await b.delete(SNAP(n))).toBe(true);
      expect(await poolContents(c)).toEqual([]);
    });
  }

  it('a delete while the upload runs waits for it, and the import then keeps nothing', async () => {
    const n = fresh();
    const body = new PassThrough();
    const importing = attempt(b.importImage!(SNAP(n), body, terms({ length: 2 * MiB })));
    body.write(randomBytes(MiB));
    // Seen creating: the job is there.
    for (;;) {
      if ((await b.describe(SNAP(n))).state === 'creating') break;
      await new Promise((r) => setImmediate(r));
    }
    const deleting = b.delete(SNAP(n));
    body.end(randomBytes(MiB));
    expect(faultOf(await importing)).toBe('IncorrectState');
    expect(await deleting).toBe(true);
    expect(await b.describe(SNAP(n))).toEqual({ id: SNAP(n), state: 'absent' });
    expect(await poolContents(c)).toEqual([]);
    expect(leftovers()).toEqual([]);
  });

  it('a restart mid-import removes the half-made image and the staging files; one cut after its snapshot was taken rolls forward', async () => {
    const [cut, taken, renamed] = [fresh(), fresh(), fresh()];
    const file = join(dir, 'half.raw');
    writeFileSync(file, randomBytes(MiB));
    // What a delegate killed at each point leaves behind.
    await c.rbd('import', '--no-progress', file, `${c.pool}/part.${SNAP(cut)}`);
    writeFileSync(join(staging, `.${SNAP(cut)}.upload.part`), 'half an upload');
    writeFileSync(join(staging, `.${SNAP(cut)}.raw.part`), 'half a conversion');
    await c.rbd('import', '--no-progress', file, `${c.pool}/gone.${SNAP(renamed)}`);
    await c.rbd('import', '--no-progress', file, `${c.pool}/gone.${SNAP(taken)}`);
    await c.rbd('snap', 'create', '--no-progress', `${c.pool}/gone.${SNAP(taken)}@${SNAP(taken)}`);
    const restarted = (await openRbd(rbdConfig(c, { stagingDir: staging }))).backend;
    expect(leftovers()).toEqual([]);
    expect(await poolContents(c)).toEqual([`gone.${SNAP(taken)}`, `gone.${SNAP(taken)}@${SNAP(taken)}`]);
    expect(await restarted.describe(SNAP(cut))).toEqual({ id: SNAP(cut), state: 'absent' });
    // Its point in time was taken: protected, ready; the front's undo of the import deletes it.
    expect(await restarted.describe(SNAP(taken))).toMatchObject({ state: 'ready', sizeBytes: MiB });
    expect(await restarted.delete(SNAP(taken))).toBe(true);
    expect(await poolContents(c)).toEqual([]);
  });

  it('a delegate started without a staging folder refuses images with a clear fault', async () => {
    const bare = (await openRbd(rbdConfig(c))).backend;
    const err = await attempt(bare.importImage!(SNAP(fresh()), upload(randomBytes(MiB)), terms()));
    expect(faultOf(err)).toBe('OperationFailed');
    expect(String((err as Error).message)).toMatch(/takes no images/);
    expect(await poolContents(c)).toEqual([]);
  });
});
