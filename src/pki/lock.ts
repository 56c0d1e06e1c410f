import { linkSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { now } from '../core/clock.js';

/**
 * A lock file holding the owner's PID, so two `vbs admin user` commands on
 * one data folder run one after the other. A live holder is waited for, at
 * most `timeoutMs`; a lock left by a process that no longer exists is taken
 * over.
 *
 * Two things keep that safe:
 * - The lock file never exists without its PID: it is written whole under a
 *   private name, then linked into place (link(2) fails if the name exists).
 *   So an empty or unreadable lock file was left by a crash, not being
 *   written this instant, and is taken over like a dead holder's.
 * - Taking over happens under a second, short lock (`<file>.break`), and only
 *   if the lock file, looked at again there, still has a dead holder: two
 *   commands that both saw the dead holder cannot both remove it, the second
 *   removing the first's fresh lock.
 */
export async function withFileLock<T>(file: string, run: () => Promise<T>, timeoutMs = 10_000): Promise<T> {
  const end = now() + timeoutMs;
  for (;;) {
    if (tryCreate(file)) break;
    const seen = inspect(file);
    if (seen && !seen.alive) {
      removeIfStill(file, seen);
      continue;
    }
    if (now() > end) throw new Error(`${file} is held by another vbs command (PID ${seen?.pid}); try again when it has finished`);
    await new Promise((r) => setTimeout(r, 50));
  }
  try {
    return await run();
  } finally {
    unlinkQuietly(file);
  }
}

/** Creates `file` holding our PID, complete, or returns false when it exists. */
function tryCreate(file: string): boolean {
  const mine = `${file}.${process.pid}.${randomBytes(6).toString('hex')}`;
  writeFileSync(mine, String(process.pid), { mode: 0o600 });
  try {
    linkSync(mine, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return false;
  } finally {
    unlinkQuietly(mine);
  }
}

interface Seen {
  readonly ino: number;
  readonly pid: number | undefined;
  readonly alive: boolean;
}

/** The lock file as it is now: which file, whose, and whether that process lives; undefined if it is gone. */
function inspect(file: string): Seen | undefined {
  try {
    const ino = statSync(file).ino;
    const pid = Number(readFileSync(file, 'utf8').trim());
    const holder = Number.isInteger(pid) && pid > 0 ? pid : undefined;
    return { ino, pid: holder, alive: holder !== undefined && processAlive(holder) };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Removes a dead holder's lock file, if it is still that file, under the take-over lock. */
function removeIfStill(file: string, dead: Seen): void {
  const breaker = `${file}.break`;
  if (!tryCreate(breaker)) {
    // Someone else is taking over (a few system calls); or a taker died
    // there, which a dead PID in the breaker shows.
    const taker = inspect(breaker);
    if (taker && !taker.alive) unlinkIfSame(breaker, taker.ino);
    return;
  }
  try {
    // Looked at again under the take-over lock: only a removal (made under
    // it) lets another file take this name, so what is seen here stays.
    const again = inspect(file);
    if (again && !again.alive && again.ino === dead.ino) unlinkIfSame(file, dead.ino);
  } finally {
    unlinkQuietly(breaker);
  }
}

function unlinkIfSame(file: string, ino: number): void {
  try {
    if (statSync(file).ino === ino) unlinkSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function unlinkQuietly(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // Already gone.
  }
}
