import { readFileSync } from 'node:fs';

/**
 * The one clock every service reads for leases, retries, back-offs and
 * certificate validity. Reading time through here (never `Date.now()`
 * directly) lets a soak step a service's clock forward or back without
 * touching the machine's real clock: `VBS_CLOCK_OFFSET_FILE` names a file
 * holding a signed number of milliseconds added to the real time. The file is
 * read again at most every 200 ms, so a step takes effect promptly and a hot
 * path does not stat a file per call. Without the variable this is Date.now().
 */
const offsetFile = process.env.VBS_CLOCK_OFFSET_FILE;
const REREAD_MS = 200;
let offsetMs = 0;
let readAt = -Infinity;

function currentOffset(): number {
  if (!offsetFile) return 0;
  const real = Date.now();
  if (real - readAt >= REREAD_MS) {
    readAt = real;
    try {
      const n = Number(readFileSync(offsetFile, 'utf8').trim());
      offsetMs = Number.isFinite(n) ? n : 0;
    } catch {
      offsetMs = 0; // no file yet: no step
    }
  }
  return offsetMs;
}

/** Milliseconds since the epoch, as this service sees them. */
export function now(): number {
  return Date.now() + currentOffset();
}

/** `now()` as an ISO-8601 string (what the database stores). */
export function nowIso(): string {
  return new Date(now()).toISOString();
}
