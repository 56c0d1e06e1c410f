import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CommandCatalog } from '../../../src/commands/catalog.js';
import { VbsError } from '../../../src/core/errors.js';
import { silentLogger } from '../../../src/core/log.js';
import { VolumeDelegateConfigSchema } from '../../../src/config/service-config.js';
import { openBackend } from '../../../src/delegates/volume/main.js';
import { volumeDelegateHandlers } from '../../../src/delegates/volume/service.js';
import type { Record as XmlRecord } from '../../../src/soap/xml.js';
import { cleanupDirs, COMMANDS, eventually, GiB, tempDir } from './helpers.js';
import { startDelegate, stopDelegates, until, writeDelegateConfig } from './served.js';
import { faultOf } from '../../fault-of.js';

const VOL = (n: number) => `vol-${n.toString(16).padStart(17, '0')}`;
const MiB = 1024 ** 2;

const mounts: string[] = [];
afterEach(async () => {
  await stopDelegates();
  for (const m of mounts.splice(0)) execFileSync('umount', [m]);
  cleanupDirs();
});

/** A tmpfs of exactly `bytes` (root): a file system whose free space only this test changes. */
function smallFileSystem(bytes: number): string {
  const dir = tempDir('vbs-file-fs-');
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir]);
  mounts.push(dir);
  return dir;
}

function fileBackendConfig(backend: object) {
  return VolumeDelegateConfigSchema.parse({ role: 'volume-delegate', listen: { port: 0 }, tls: { key: 'k', cert: 'c', ca: 'a' }, backend });
}

/** The delegate's SOAP handlers over a file back end configured as in volume-delegate.json. */
async function fileDelegate(backend: object) {
  const cfg = fileBackendConfig(backend);
  const catalog = CommandCatalog.fromFile(COMMANDS);
  const b = await openBackend(cfg.backend, catalog, silentLogger, { commandConcurrency: cfg.commandConcurrency });
  const handlers = volumeDelegateHandlers(b);
  const ctx = { caller: 'vbs-front', admin: false, requestId: 'test', log: silentLogger };
  /** Calls an operation as the SOAP server would. */
  const call = async (op: string, input: XmlRecord = {}) => handlers[op]!(input, ctx);
  return { backend: b, call };
}

describe('file back end: disk reserve', { timeout: 120_000 }, () => {
  it('keeps the smaller of reservePercent and reserveGiB free, counted in the capacity check', async () => {
    const size = 2 * GiB + 64 * MiB;
    const root = smallFileSystem(size);
    // Default reserve: 5 % of 2 GiB + 64 MiB (under 10 GiB).
    const reserve = Math.floor(size * 0.05);
    const { backend, call } = await fileDelegate({ type: 'file', root });
    expect(await call('GetCapacity')).toEqual({ backend: 'file', totalBytes: size, freeBytes: size - reserve, provisionedBytes: 0 });
    await call('CreateVolume', { volumeId: VOL(1), sizeGiB: 1 });
    await eventually(async () => ((await backend.describe(VOL(1))).state === 'ready' ? true : undefined));
    expect(await backend.capacity()).toEqual({ totalBytes: size, freeBytes: size - GiB - reserve, provisionedBytes: GiB });
    // 1 GiB + 64 MiB is free on the file system, but part of it is the reserve: refused, nothing made.
    const err = await faultOf(call('CreateVolume', { volumeId: VOL(2), sizeGiB: 1 }));
    expect(err.code).toBe('InsufficientCapacity');
    expect(readdirSync(root).sort()).toEqual([`${VOL(1)}.img`]);
  });

  it('takes reserveGiB when it is the smaller, and a reserve of 0 lets volumes fill the file system', async () => {
    const size = 2 * GiB + 64 * MiB;
    const root = smallFileSystem(size);
    writeFileSync(join(root, 'other-data'), Buffer.alloc(1024 * 1024));
    const small = await fileDelegate({ type: 'file', root, reservePercent: 50, reserveGiB: 0.03125 }); // 32 MiB < 50 %
    const free = (await small.backend.capacity()).freeBytes;
    const fs = Number(execFileSync('stat', ['-f', '-c', '%a*%S', root], { encoding: 'utf8' }).trim().split('*').reduce((a, b) => String(Number(a) * Number(b))));
    expect(free).toBe(fs - 32 * MiB);
    const none = await fileDelegate({ type: 'file', root, reservePercent: 0 });
    expect((await none.backend.capacity()).freeBytes).toBe(fs);
  });

  it.each([
    [{ reservePercent: -1 }],
    [{ reservePercent: 51 }],
    [{ reservePercent: '5' }],
    [{ reserveGiB: -2 }],
    [{ reserveGiB: 'ten' }],
  ])('refuses a bad reserve setting: %j', (over) => {
    expect(() => fileBackendConfig({ type: 'file', root: '/srv/v', ...over })).toThrow();
  });
});

describe('file back end: provisioned bytes', { timeout: 240_000 }, () => {
  /** Commands with a sparse create, so dozens of 1 GiB volumes cost no disk. */
  function sparseCommands(): string {
    const file = join(tempDir('vbs-file-cmds-'), 'commands.properties');
    writeFileSync(file, `${readFileSync(COMMANDS, 'utf8')}\nvolume.file.create = truncate -s <bytes> <path>\n`);
    return file;
  }

  /** What the files in the folder add up to (the truth the running total must match). */
  function bytesOfFiles(root: string): number {
    return readdirSync(root)
      .filter((f) => f.endsWith('.img'))
      .reduce((n, f) => n + statSync(join(root, f)).size, 0);
  }

  it('creates racing deletes through the delegate process all succeed, and the total matches the files, also after a restart', async () => {
    const root = tempDir('vbs-file-race-');
    mkdirSync(root, { recursive: true });
    const config = writeDelegateConfig({ type: 'file', root, capacityGiB: 4096 }, { commands: sparseCommands() });
    const first = await startDelegate(config);
    const c = first.client;
    const N = 40;
    await Promise.all(Array.from({ length: N }, (_, i) => c.call('CreateVolume', { volumeId: VOL(i + 1), sizeGiB: 1 + (i % 3) })));
    for (let i = 1; i <= N; i++) await until(c, VOL(i), 'ready');

    // Every old volume deleted while as many new ones are created, with listings in between.
    const calls: Promise<unknown>[] = [];
    for (let i = 1; i <= N; i++) {
      calls.push(c.call('DeleteObject', { id: VOL(i) }));
      calls.push(c.call('CreateVolume', { volumeId: VOL(1000 + i), sizeGiB: 1 + (i % 2) }));
      if (i % 5 === 0) calls.push(c.call('DescribeObjects', {}), c.call('GetCapacity', {}));
    }
    const outcomes = await Promise.allSettled(calls);
    expect(outcomes.filter((o) => o.status === 'rejected').map((o) => String((o as PromiseRejectedResult).reason))).toEqual([]);
    for (let i = 1; i <= N; i++) await until(c, VOL(1000 + i), 'ready');

    const expected = Array.from({ length: N }, (_, k) => (1 + ((k + 1) % 2)) * GiB).reduce((a, b) => a + b, 0);
    expect(bytesOfFiles(root)).toBe(expected);
    expect(((await c.call('GetCapacity', {})) as XmlRecord).provisionedBytes).toBe(expected);

    await stopDelegates();
    const second = await startDelegate(config);
    expect(((await second.client.call('GetCapacity', {})) as XmlRecord).provisionedBytes).toBe(expected);
  });
});
