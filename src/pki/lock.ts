import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';

/**
 * A lock file (created exclusively, holding the owner's PID) so two `vbs admin
 * user` commands on one data folder run one after the other. A lock left by
 * a process that no longer exists is taken over; a live holder is waited for,
 * at most `timeoutMs`.
 */
export async function withFileLock<T>(file: string, run: () => Promise<T>, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (!holderAlive(file)) {
        unlinkQuietly(file);
        continue;
      }
      if (Date.now() > end) throw new Error(`${file} is held by another vbs command (PID ${readHolder(file)}); try again when it has finished`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  try {
    return await run();
  } finally {
    unlinkQuietly(file);
  }
}

function readHolder(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function holderAlive(file: string): boolean {
  const pid = readHolder(file);
  // Being written this instant (empty yet): count it as held.
  if (pid === undefined) return true;
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
