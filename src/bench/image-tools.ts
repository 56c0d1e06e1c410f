import { execFileSync } from 'node:child_process';
import { closeSync, createReadStream, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { VBS_SERVICE } from '../services/vbs.js';
import { openStream, readAnswer } from '../soap/stream-client.js';
import type { Record as XmlRecord } from '../soap/xml.js';
import type { SoapClient } from '../soap/client.js';
import { IMPORT_IMAGE_OUTPUT } from '../front/images.js';

/** What the images bench shares between its back ends: the image files it makes, and an import as a user makes one. */

export const GiB = 1024 ** 3;
export const seconds = (t: bigint) => Number(process.hrtime.bigint() - t) / 1e9;

/** A file of real bytes (not zeros), so no copy can skip them as holes. */
export function makeImage(file: string, bytes: number): void {
  const chunk = Buffer.alloc(8 * 1024 * 1024);
  for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((i * 2654435761) >>> 0, i);
  const fd = openSync(file, 'w');
  try {
    for (let off = 0; off < bytes; off += chunk.length) {
      chunk.writeUInt32LE(off / chunk.length, 0); // each chunk differs: no dedup anywhere
      writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - off), off);
    }
  } finally {
    closeSync(fd);
  }
  execFileSync('sync', ['-f', file]);
}

export interface AdminTls {
  key: Buffer;
  cert: Buffer;
  ca: Buffer;
}

/** The deployment's administrator certificate (vbs up writes it in its data folder). */
export function adminTls(dir: string): AdminTls {
  return { key: readFileSync(join(dir, 'pki', 'admin.key')), cert: readFileSync(join(dir, 'pki', 'admin.crt')), ca: readFileSync(join(dir, 'pki', 'ca.crt')) };
}

/** Streams a raw image file into the front (the PUT `vbs import-image` makes); returns the completed snapshot's id. */
export async function importFile(url: string, tls: AdminTls, file: string): Promise<string> {
  const res = await openStream({ def: VBS_SERVICE, url, tls }, { method: 'PUT', path: 'images', query: { format: 'raw' }, body: createReadStream(file), length: statSync(file).size, idleMs: 120_000 });
  const snap = (await readAnswer(res, VBS_SERVICE, 'ImportImage', IMPORT_IMAGE_OUTPUT)).snapshot as XmlRecord;
  if (snap.status !== 'completed') throw new Error(`import ended ${String(snap.status)}`);
  return String(snap.snapshotId);
}

/**
 * `create-volume SIZE C snap --count n`, as the CLI sends it (CreateVolume
 * ×n, 10 in flight unless told, each with its own client token), until all are
 * `available`; returns the seconds it took and the volumes' ids.
 */
export async function fanOut(soap: SoapClient, snapshotId: string, n: number, tokenPrefix: string, inFlight = 10): Promise<{ seconds: number; ids: string[] }> {
  const t = process.hrtime.bigint();
  const ids: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < n) {
        const i = next++;
        const v = (await soap.call('CreateVolume', { size: 1, comment: `fan ${i}`, snapshotId, clientToken: `${tokenPrefix}-${i}` })).volume as XmlRecord;
        ids.push(String(v.volumeId));
      }
    }),
  );
  for (;;) {
    const vols = (await soap.call('DescribeVolumes', { volumeId: ids })).volume as XmlRecord[];
    if (vols.every((v) => v.status === 'available')) break;
    if (vols.some((v) => v.status === 'error')) throw new Error('a volume from the image ended in error');
    if (seconds(t) > 3600) throw new Error(`${n} volumes not available within an hour`);
    await delay(20);
  }
  return { seconds: seconds(t), ids };
}
