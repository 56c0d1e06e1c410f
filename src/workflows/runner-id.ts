import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';

/**
 * Who runs journaled work, and whether a runner that holds a claim is gone.
 *
 * A runner's id is `front:<host>:<pid>:<uuid>`; each of its claims adds a
 * sequence number. A front restarted after a crash must take over its dead
 * predecessor's work at once, not 120 s later when the leases run out, yet a
 * second live front on the same database must never have its work taken. The
 * database is a local SQLite file, so the fronts sharing it share a host: a
 * runner on this host whose process no longer exists is gone. Runners on
 * another host (a database on a shared disk), or whose process id was reused
 * by another process, are never taken for gone: their work waits for the
 * lease to expire, which is the safe direction.
 */

/** Runners of this process that have not been stopped (several engines run in one test process). */
const live = new Set<string>();

export function newRunnerId(): string {
  const id = `front:${hostname()}:${process.pid}:${randomUUID()}`;
  live.add(id);
  return id;
}

/** A runner stopped (its front closed): its claims are free for its successor. */
export function runnerStopped(id: string): void {
  live.delete(id);
}

/** Whether the runner that holds a claim (`<runner id>:<n>`) is known to be gone. */
export function runnerIsGone(claimOwner: string): boolean {
  const m = /^(front:(.*):(\d+):[0-9a-f-]{36}):\d+$/.exec(claimOwner);
  if (!m) return false; // an owner written by another version: wait for its lease
  const [, runner, host, pidText] = m as unknown as [string, string, string, string];
  if (host !== hostname()) return false;
  const pid = Number(pidText);
  if (pid === process.pid) return !live.has(runner);
  try {
    process.kill(pid, 0); // signal 0: only asks whether the process exists
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH'; // EPERM: it exists, under another user
  }
}
