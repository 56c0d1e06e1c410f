import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, bench, describe } from 'vitest';

/**
 * What the file back end's choices buy, measured against the papers' way in
 * the same run: a snapshot as a reflink clone versus a full `cp` or `dd`
 * copy, and a blank volume by `fallocate` versus writing zeros with `dd`.
 * On XFS with reflink (a loop mount made here, when run as root) clones are
 * O(1); on a file system without reflink, VBS's `cp --reflink=auto` falls back
 * to a real copy and the numbers show that too.
 */
const SOURCE_MIB = 256;
const BLANK_MIB = 1024;
const OPTIONS = { iterations: 3, warmupIterations: 0, time: 0, warmupTime: 0 };

const run = (cmd: string, ...args: string[]): void => void execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });

function reflinkFolder(): { dir: string; fs: string; cleanup: () => void } {
  const base = mkdtempSync(join(tmpdir(), 'vbs-bench-'));
  const plain = { dir: base, fs: 'the temporary folder (no reflink expected)', cleanup: () => rmSync(base, { recursive: true, force: true }) };
  if (process.getuid?.() !== 0) return plain;
  try {
    const image = join(base, 'xfs.img');
    const mnt = join(base, 'mnt');
    run('truncate', '-s', '4G', image);
    run('mkfs.xfs', '-q', '-m', 'reflink=1', image);
    run('mkdir', mnt);
    run('mount', '-o', 'loop', image, mnt);
    return {
      dir: mnt,
      fs: 'XFS with reflink (loop mount)',
      cleanup: () => {
        run('umount', mnt);
        rmSync(base, { recursive: true, force: true });
      },
    };
  } catch {
    return plain;
  }
}

const where = reflinkFolder();
afterAll(() => where.cleanup());
const source = join(where.dir, 'vol-source.img');
// Real data, so neither a sparse copy nor a zero-detecting one can cheat.
run('dd', 'if=/dev/urandom', `of=${source}`, 'bs=1M', `count=${SOURCE_MIB}`, 'status=none');
const target = join(where.dir, 'snap-target.img');
const removeTarget = () => rmSync(target, { force: true });
console.log(`volume data benchmarks on ${where.fs}: source ${statSync(source).size / 2 ** 20} MiB`);

describe(`snapshot of a ${SOURCE_MIB} MiB volume`, () => {
  bench('VBS: cp --reflink=auto --sparse=always (clone where the file system can)', () => run('cp', '--reflink=auto', '--sparse=always', source, target), {
    ...OPTIONS,
    teardown: removeTarget,
  });
  bench('papers: cp (a full copy)', () => run('cp', '--reflink=never', source, target), { ...OPTIONS, teardown: removeTarget });
  bench('papers: dd bs=1M', () => run('dd', `if=${source}`, `of=${target}`, 'bs=1M', 'status=none'), { ...OPTIONS, teardown: removeTarget });
});

describe(`blank ${BLANK_MIB} MiB volume`, () => {
  bench('VBS: fallocate (no zeros written)', () => run('fallocate', '-l', String(BLANK_MIB * 2 ** 20), target), { ...OPTIONS, teardown: removeTarget });
  bench('papers: dd if=/dev/zero conv=fsync', () => run('dd', 'if=/dev/zero', `of=${target}`, 'bs=1M', `count=${BLANK_MIB}`, 'conv=fsync', 'status=none'), {
    ...OPTIONS,
    teardown: removeTarget,
  });
});
