import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { CommandCatalog } from '../../../src/commands/catalog.js';
import { silentLogger } from '../../../src/core/log.js';
import { VolumeDelegateConfigSchema } from '../../../src/config/service-config.js';
import { openBackend } from '../../../src/delegates/volume/main.js';
import type { FileBackend } from '../../../src/delegates/volume/file-backend.js';
import { cleanupDirs, COMMANDS, lvmConfig, lvNames, openLvm, ready, simSite, tempDir } from './helpers.js';
import { faultOf } from '../../fault-of.js';

const SNAP = (n: number) => `snap-${n.toString(16).padStart(17, '0')}`;
const MiB = 1024 ** 2;

afterEach(() => cleanupDirs());

/** A file back end as volume-delegate.json configures it, with real qemu-img behind its patterns. */
async function fileBackend(maxImports = 4): Promise<{ backend: FileBackend; root: string }> {
  const root = tempDir('vbs-intake-');
  const cfg = VolumeDelegateConfigSchema.parse({ role: 'volume-delegate', listen: { port: 0 }, tls: { key: 'k', cert: 'c', ca: 'a' }, backend: { type: 'file', root, maxImports } });
  const backend = (await openBackend(cfg.backend, CommandCatalog.fromFile(COMMANDS), silentLogger)) as FileBackend;
  return { backend, root };
}

const terms = { format: 'raw' as const, maxBytes: 64 * MiB, idleMs: 30_000 };

describe('image intake on the file back end', () => {
  it('takes maxImports uploads at once and refuses one more at once, then takes it once a slot is free', async () => {
    const { backend, root } = await fileBackend(1);
    const first = new PassThrough();
    const data = randomBytes(MiB);
    const importing = backend.importImage(SNAP(1), first, terms);
    first.write(data.subarray(0, MiB / 2));
    expect((await backend.describe(SNAP(1))).state).toBe('creating');
    const refused = await faultOf(backend.importImage(SNAP(2), new PassThrough(), terms));
    expect(refused.code).toBe('RequestLimitExceeded');
    first.end(data.subarray(MiB / 2));
    expect(await importing).toBe(MiB);
    expect(readFileSync(join(root, `${SNAP(1)}.img`)).equals(data)).toBe(true);
    const second = new PassThrough();
    second.end(data);
    expect(await backend.importImage(SNAP(2), second, terms)).toBe(MiB);
  });

  it('an upload cut midway leaves no file and no object', async () => {
    const { backend, root } = await fileBackend();
    const cut = new PassThrough();
    const importing = backend.importImage(SNAP(3), cut, { ...terms, length: 4 * MiB });
    cut.write(randomBytes(MiB));
    cut.destroy(new Error('socket hang up'));
    expect((await faultOf(importing)).code).toBe('RequestTimeout');
    expect(readdirSync(root)).toEqual([]);
    expect((await backend.describe(SNAP(3))).state).toBe('absent');
  });

  it('an upload that stops sending is cut after its idle limit', async () => {
    const { backend, root } = await fileBackend();
    const silent = new PassThrough();
    silent.write(randomBytes(1024));
    const fault = await faultOf(backend.importImage(SNAP(4), silent, { ...terms, idleMs: 300 }));
    expect(fault.code).toBe('RequestTimeout');
    expect(readdirSync(root)).toEqual([]);
  });

  it('refuses an upload past its limit as it streams, and bytes that are not the format named', async () => {
    const { backend, root } = await fileBackend();
    const big = new PassThrough();
    big.end(randomBytes(2 * MiB));
    expect((await faultOf(backend.importImage(SNAP(5), big, { ...terms, maxBytes: MiB }))).code).toBe('RequestTooLarge');
    const notQcow2 = new PassThrough();
    notQcow2.end(randomBytes(MiB));
    expect((await faultOf(backend.importImage(SNAP(6), notQcow2, { ...terms, format: 'qcow2' }))).code).toBe('InvalidParameterValue');
    expect(readdirSync(root), 'left behind').toEqual([]);
  });
});

describe('image intake on the lvm-iscsi back end (host simulator)', () => {
  it('imports an image into a snapshot LV of whole GiB, makes a volume from it, and exports it back zero-padded', async () => {
    const site = simSite(8);
    const { backend } = await openLvm(lvmConfig(site));
    const data = randomBytes(3 * MiB + 17);
    const upload = new PassThrough();
    upload.end(data);
    expect(await backend.importImage!(SNAP(7), upload, terms)).toBe(1024 * MiB);
    expect(lvNames(site.state)).toContain(SNAP(7));
    const vol = `vol-${'0'.repeat(16)}7`;
    await backend.createVolume(vol, 1, SNAP(7));
    await ready(backend, vol);
    const { body, length } = await backend.openImage!(SNAP(7), 'raw');
    expect(length).toBe(1024 * MiB);
    const chunks: Buffer[] = [];
    let got = 0;
    for await (const c of body as AsyncIterable<Buffer>) {
      if (got < data.length) chunks.push(c);
      got += c.length;
    }
    expect(got).toBe(1024 * MiB);
    expect(Buffer.concat(chunks).subarray(0, data.length).equals(data)).toBe(true);
    // A cut upload leaves no LV and no staged file.
    const cut = new PassThrough();
    const importing = backend.importImage!(SNAP(8), cut, { ...terms, length: 4 * MiB });
    cut.write(randomBytes(MiB));
    cut.destroy(new Error('socket hang up'));
    expect((await faultOf(importing)).code).toBe('RequestTimeout');
    expect(lvNames(site.state).filter((n) => n.includes(SNAP(8)))).toEqual([]);
    expect(readdirSync(site.stateDir).filter((f) => f.startsWith('.'))).toEqual([]);
  });
});
