import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Imported first by a test file whose in-process services must read a
 * clock the test can step (src/core/clock.ts reads VBS_CLOCK_OFFSET_FILE
 * when it is loaded). `stepClock(ms)` sets the offset from real time.
 */
const file = join(mkdtempSync(join(tmpdir(), 'vbs-clock-')), 'offset');
writeFileSync(file, '0');
process.env.VBS_CLOCK_OFFSET_FILE = file;

export function stepClock(offsetMs: number): void {
  writeFileSync(file, String(offsetMs));
}
