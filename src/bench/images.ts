import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { VBS_HOME } from '../core/paths.js';
import { VBS_SERVICE } from '../services/vbs.js';
import { SoapClient } from '../soap/client.js';
import { SoakDeployment, writeThinCommands } from '../soak/deployment.js';
import { benchFolder } from './folder.js';
import { adminTls, fanOut, GiB, importFile as importInto, makeImage, seconds } from './image-tools.js';
import { rbdImageRows } from './images-rbd.js';
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
 *     papers' full copy (`cp --reflink=never`) of one image, times 100;
 *   - the same import and fan-out on the rbd back end, on a throw-away Ceph
 *     cluster of the bench's own (src/bench/images-rbd.ts).
 * `--only file` or `--only rbd` runs one back end's rows.
 * Neither side syncs: both end in the page cache, as an import does.
 * It ends only the processes it started and removes its folder.
 */

const say = (line: string) => process.stdout.write(`${line}\n`);
const run = promisify(execFile);

async function main(): Promise<number> {
  const full = process.argv.includes('--full');
  const onlyAt = process.argv.indexOf('--only');
  const only = onlyAt < 0 ? undefined : process.argv[onlyAt + 1];
  if (only !== undefined && only !== 'file' && only !== 'rbd') throw new Error('--only takes file or rbd');
  const load = loadavg().map((l) => l.toFixed(1)).join(', ');
  const where = benchFolder();
  const dir = join(where.dir, 'deployment');
  mkdirSync(dir);
  const commands = join(where.dir, 'commands.properties');
  writeThinCommands(commands);
  const rows: Row[] = [];
  const started = Date.now();
  let dep: SoakDeployment | undefined;
  try {
    say(`images bench: vbs up on ${where.fs}, ${cpus().length} cores, ${Math.round(totalmem() / GiB)} GiB memory, load average ${load}`);
    if (only !== 'rbd') rows.push(...(await fileRows(where, dir, commands, full, (d) => (dep = d))));
    if (only !== 'file') rows.push(...(await rbdImageRows(where.dir, say)));
  } finally {
    await dep?.stop();
    where.cleanup();
  }
  const about = {
    date: new Date().toISOString(),
    machine: `${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${Math.round(totalmem() / GiB)} GiB memory`,
    load: `load average ${load} at the start, ${loadavg().map((l) => l.toFixed(1)).join(', ')} at the end`,
    fileSystem: where.fs,
    seconds: Math.round((Date.now() - started) / 1000),
    notes: ['a real vbs up on 127.0.0.1, uploads over mutual TLS through the front to the volume delegate, the same disk for cp', 'neither the imports nor cp sync to disk'],
  };
  say('');
  say(formatTable(rows));
  const out = resolve(VBS_HOME, 'bench', 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, only ? `images-${only}.json` : 'images.json'), jsonReport(rows, about));
  say(`written ${join(out, only ? `images-${only}.json` : 'images.json')} (${about.seconds} s)`);
  return 0;
}

/** The file back end's rows (on the bench folder's file system: XFS reflink as root). */
async function fileRows(where: ReturnType<typeof benchFolder>, dir: string, commands: string, full: boolean, started: (d: SoakDeployment | undefined) => void): Promise<Row[]> {
  const rows: Row[] = [];
  {
    const dep = await SoakDeployment.start({ dir, backend: 'file', commands, stderrFile: join(where.dir, 'vbs-up.log') });
    started(dep);
    const tls = adminTls(dir);
    const soap = new SoapClient({ def: VBS_SERVICE, url: dep.url, tls });
    const importFile = (file: string) => importInto(dep.url, tls, file);
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
    const fanVbs = (await fanOut(soap, oneGiBSnapshot, 100, 'fan')).seconds;
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
    await dep.stop();
    started(undefined);
  }
  return rows;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`images bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
