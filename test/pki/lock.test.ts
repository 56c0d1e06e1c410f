import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { withFileLock } from '../../src/pki/lock.js';

/**
 * The lock `vbs admin user` commands take on a data folder (issue 16 item 9):
 * an empty lock file is not held for ever, and commands that all find a dead
 * holder's lock take it one at a time. The contenders are real processes
 * (the built dist/, as the CLI runs it).
 */
const LOCK_JS = resolve(import.meta.dirname, '../../dist/pki/lock.js');
let dir = '';
afterEach(() => rmSync(dir, { recursive: true, force: true }));
beforeAll(() => {
  if (!existsSync(LOCK_JS)) throw new Error('run `npm run build` first: the contenders run dist/');
});

/** A PID that no process has any more: a child that has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}

describe('the PKI lock', () => {
  it('takes over an empty lock file (a crash between create and write) instead of waiting for ever', async () => {
    dir = mkdtempSync(join(tmpdir(), 'vbs-lock-'));
    const file = join(dir, 'users.lock');
    writeFileSync(file, '');
    expect(await withFileLock(file, async () => 'ran', 2_000)).toBe('ran');
    expect(existsSync(file)).toBe(false);
  });

  it('waits for a live holder, and says who it is', async () => {
    dir = mkdtempSync(join(tmpdir(), 'vbs-lock-'));
    const file = join(dir, 'users.lock');
    writeFileSync(file, String(process.ppid));
    await expect(withFileLock(file, async () => 'ran', 200)).rejects.toThrow(new RegExp(`held by another vbs command \\(PID ${process.ppid}\\)`));
  });

  it('processes that all find a dead holder take the lock one at a time', async () => {
    dir = mkdtempSync(join(tmpdir(), 'vbs-lock-'));
    const file = join(dir, 'users.lock');
    const inside = join(dir, 'inside');
    const work = join(dir, 'work');
    // Each contender waits for "go" on stdin, takes the lock, and inside it
    // claims `inside` exclusively: a second one inside at once finds it there.
    const contender = `
      import { openSync, closeSync, unlinkSync, writeFileSync, readFileSync } from 'node:fs';
      process.stdout.write('ready;');
      const { withFileLock } = await import(${JSON.stringify(LOCK_JS)});
      process.stdin.once('data', async () => {
        let overlap = false;
        await withFileLock(${JSON.stringify(file)}, async () => {
          try { closeSync(openSync(${JSON.stringify(inside)}, 'wx')); } catch { overlap = true; return; }
          for (let i = 0; i < 100; i++) { writeFileSync(${JSON.stringify(work)}, String(i)); readFileSync(${JSON.stringify(work)}); }
          unlinkSync(${JSON.stringify(inside)});
        }, 30000);
        process.stdout.write(overlap ? 'overlap' : 'alone');
      });`;
    const outcomes: string[] = [];
    for (let round = 0; round < 3; round++) {
      writeFileSync(file, String(deadPid()));
      const children = Array.from({ length: 4 }, () => spawn(process.execPath, ['--input-type=module', '-e', contender], { stdio: ['pipe', 'pipe', 'inherit'] }));
      const done = children.map(
        (c) =>
          new Promise<string>((r) => {
            let out = '';
            c.stdout!.on('data', (d) => (out += d));
            c.once('exit', () => r(out.replace('ready;', '')));
          }),
      );
      // All loaded before any starts: each says "ready;" then waits for "go".
      await Promise.all(children.map((c) => new Promise((r) => c.stdout!.once('data', r))));
      for (const c of children) c.stdin!.end('go');
      outcomes.push(...(await Promise.all(done)));
    }
    expect(outcomes).toEqual(Array(12).fill('alone'));
    expect(existsSync(file)).toBe(false);
  });
});
