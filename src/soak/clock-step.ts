import { renameSync, writeFileSync } from 'node:fs';

/**
 * The services' clock as the soak steps it: the file VBS_CLOCK_OFFSET_FILE
 * names (src/core/clock.ts), holding the signed milliseconds every service
 * adds to the real time. The machine's own clock is never touched; only the
 * services `vbs up` started with that variable see the step (within 200 ms).
 */
export class SoakClock {
  private offset = 0;

  constructor(readonly file: string) {
    this.write();
  }

  /** The services' time minus the real time, in ms. */
  get offsetMs(): number {
    return this.offset;
  }

  /** Moves the services' clock by `deltaMs` (negative: back). */
  step(deltaMs: number): void {
    this.offset += deltaMs;
    this.write();
  }

  // Written whole then renamed, so a service never reads half a number (which it would take as 0).
  private write(): void {
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, `${this.offset}\n`);
    renameSync(tmp, this.file);
  }
}
