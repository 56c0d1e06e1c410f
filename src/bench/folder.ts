import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A file system with reflink for the deployment (root: an XFS loop mount), else the temporary folder. */
export function benchFolder(): { dir: string; fs: string; reflink: boolean; cleanup: () => void } {
  const base = mkdtempSync(join(tmpdir(), 'vbs-bench-cp-'));
  const plain = { dir: base, fs: 'the temporary folder', reflink: false, cleanup: () => rmSync(base, { recursive: true, force: true }) };
  if (process.getuid?.() !== 0) return plain;
  const image = join(base, 'xfs.img');
  const mnt = join(base, 'mnt');
  try {
    execFileSync('truncate', ['-s', '100G', image]);
    execFileSync('mkfs.xfs', ['-q', '-m', 'reflink=1', image]);
    mkdirSync(mnt);
    execFileSync('mount', ['-o', 'loop', image, mnt]);
  } catch {
    return plain;
  }
  return {
    dir: mnt,
    fs: 'XFS with reflink (a 100 GiB sparse loop image)',
    reflink: true,
    cleanup: () => {
      try {
        execFileSync('umount', [mnt]);
      } finally {
        rmSync(base, { recursive: true, force: true });
      }
    },
  };
}
