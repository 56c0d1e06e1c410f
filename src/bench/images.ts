import { execFileSync, execFile } from 'node:child_process';
import { closeSync, createReadStream, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as delay } from 'node:timers/promises';
import { VBS_HOME } from '../core/paths.js';
import { VBS_SERVICE } from '../services/vbs.js';
import { SoapClient } from '../soap/client.js';
import { openStream, readAnswer } from '../soap/stream-client.js';
import type { Record as XmlRecord } from '../soap/xml.js';
import { IMPORT_IMAGE_OUTPUT } from '../front/images.js';
import { SoakDeployment, writeThinCommands } from '../soak/deployment.js';
import { benchFolder } from './folder.js';
import { formatTable, jsonReport, type Row } from './stats.js';

/**
 * The images bench (`npm run bench`, after the control-plane bench; docs/images.md):
 * a real `vbs up` on an XFS reflink loop mount (as root; else the temporary
 * folder), its import and fan-out each beside the baseline of the same work
 * on the same disk in the same run:
 *   - import of a 1 GiB raw image (10 GiB with --full) against `cp` of the file;
 *   - four imports at once against four `cp` at once;
 *   - 100 volumes from one image (CreateVolume ×100, 10 in flight, as
 *     `create-volume --count 100`) until all are available, against the
 *     papers' full copy (`cp --reflink=never`) of one image, times 100.
 * Neither side syncs: both end in the page cache, as an import does.
 * It ends only the processes it started and removes its folder.
 */

const GiB = 1024 ** 3;
const say = (line: string) => process.stdout.write(`${line}\n`);
const run = promisify(execFile);
const seconds = (t: bigint) => Number(process.hrtime.bigint() - t) / 1e9;

/** A file of real bytes (not zeros), so no copy can skip them as holes. */
function makeImage(file: string, bytes: number): void {
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

async function main(): Promise<number> {
  const full = process.argv.includes('--full');
  const where = benchFolder();
  const dir = join(where.dir, 'deployment');
  mkdirSync(dir);
  const commands = join(where.dir, 'commands.properties');
  writeThinCommands(commands);
  const rows: Row[] = [];
  const started = Date.now();
  let dep: SoakDeployment | undefined;
  try {
    say(`images bench: vbs up on ${where.fs}, ${cpus().length} cores, ${Math.round(totalmem() / GiB)} GiB memory`);
    dep = await SoakDeployment.start({ dir, backend: 'file', commands, stderrFile: join(where.dir, 'vbs-up.log') });
    const tls = { key: readFileSync(join(dir, 'pki', 'admin.key')), cert: readFileSync(join(dir, 'pki', 'admin.crt')), ca: readFileSync(join(dir, 'pki', 'ca.crt')) };
    const soap = new SoapClient({ def: VBS_SERVICE, url: dep.url, tls });
    const importFile = async (file: string): Promise<string> => {
      const res = await openStream({ def: VBS_SERVICE, url: dep!.url, tls }, { method: 'PUT', path: 'images', query: { format: 'raw' }, body: createReadStream(file), length: statSync(file).size, idleMs: 120_000 });
      const snap = (await readAnswer(res, VBS_SERVICE, 'ImportImage', IMPORT_IMAGE_OUTPUT)).snapshot as XmlRecord;
      if (snap.status !== 'completed') throw new Error(`import ended ${String(snap.status)}`);
      return String(snap.snapshotId);
    };
    const cp = (from: string, to: string) => run('cp', ['--reflink=never', from, to]);
    const images = join(where.dir, 'images');
    mkdirSync(images);

    // --- one import, and four at once, each beside cp --------------------------
    let oneGiBSnapshot = '';
    for (const gib of full ? [1, 10] : [1]) {
      const file = join(images, `${gib}g.raw`);
      makeImage(file, gib * GiB);
      let t = process.hrtime.bigint();
      const snap = await importFile(file);
      const vbsS = seconds(t);
      if (gib === 1) oneGiBSnapshot = snap;
      t = process.hrtime.bigint();
      await cp(file, join(images, 'copy'));
      const cpS = seconds(t);
      rmSync(join(images, 'copy'));
      rows.push({ metric: `import of a ${gib} GiB raw image`, value: vbsS, unit: 's', note: `${((gib * 1024) / vbsS).toFixed(0)} MiB/s; cp of the file: ${cpS.toFixed(2)} s (${((gib * 1024) / cpS).toFixed(0)} MiB/s)` });
      say(`  import ${gib} GiB: ${vbsS.toFixed(2)} s; cp ${cpS.toFixed(2)} s`);
    }
    const four = [0, 1, 2, 3].map((i) => join(images, `four-${i}.raw`));
    for (const f of four) makeImage(f, GiB);
    let t = process.hrtime.bigint();
    await Promise.all(four.map(importFile));
    const fourVbs = seconds(t);
    t = process.hrtime.bigint();
    await Promise.all(four.map((f, i) => cp(f, join(images, `four-copy-${i}`))));
    const fourCp = seconds(t);
    rows.push({ metric: 'four 1 GiB imports at once (all four done)', value: fourVbs, unit: 's', note: `${(4096 / fourVbs).toFixed(0)} MiB/s in all; four cp at once: ${fourCp.toFixed(2)} s (${(4096 / fourCp).toFixed(0)} MiB/s)` });
    say(`  four imports at once: ${fourVbs.toFixed(2)} s; four cp at once ${fourCp.toFixed(2)} s`);
    for (const f of four) rmSync(f, { force: true });

    // --- 100 volumes from one image --------------------------------------------
    t = process.hrtime.bigint();
    const ids: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        while (next < 100) {
          const i = next++;
          const v = (await soap.call('CreateVolume', { size: 1, comment: `fan ${i}`, snapshotId: oneGiBSnapshot, clientToken: `fan-${i}` })).volume as XmlRecord;
          ids.push(String(v.volumeId));
        }
      }),
    );
    for (;;) {
      const vols = (await soap.call('DescribeVolumes', { volumeId: ids })).volume as XmlRecord[];
      if (vols.every((v) => v.status === 'available')) break;
      if (vols.some((v) => v.status === 'error')) throw new Error('a volume from the image ended in error');
      if (seconds(t) > 3600) throw new Error('100 volumes not available within an hour');
      await delay(20);
    }
    const fanVbs = seconds(t);
    const image = join(images, '1g.raw');
    const copies: number[] = [];
    for (let i = 0; i < 3; i++) {
      const c = process.hrtime.bigint();
      await cp(image, join(images, 'copy'));
      copies.push(seconds(c));
      rmSync(join(images, 'copy'));
    }
    const oneCp = copies.sort((a, b) => a - b)[1]!;
    rows.push({
      metric: '100 volumes from one 1 GiB image, all available',
      value: fanVbs,
      unit: 's',
      target: where.reflink ? { limit: 2, atMost: true } : undefined,
      note: `${where.reflink ? 'reflink clones' : 'full copies (no reflink here)'}; the papers' cp of one copy × 100: ${(oneCp * 100).toFixed(1)} s (one: ${oneCp.toFixed(2)} s, median of 3)`,
    });
    say(`  100 volumes from one image: ${fanVbs.toFixed(2)} s; cp × 100 ≈ ${(oneCp * 100).toFixed(1)} s`);
    soap.close();
  } finally {
    await dep?.stop();
    where.cleanup();
  }
  const about = {
    date: new Date().toISOString(),
    machine: `${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${Math.round(totalmem() / GiB)} GiB memory`,
    fileSystem: where.fs,
    seconds: Math.round((Date.now() - started) / 1000),
    notes: ['a real vbs up on 127.0.0.1, uploads over mutual TLS through the front to the volume delegate, the same disk for cp', 'neither the imports nor cp sync to disk'],
  };
  say('');
  say(formatTable(rows));
  const out = resolve(VBS_HOME, 'bench', 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'images.json'), jsonReport(rows, about));
  say(`written ${join(out, 'images.json')} (${about.seconds} s)`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`images bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
