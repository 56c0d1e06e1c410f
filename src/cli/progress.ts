import type { OutputStream } from './runtime.js';

/**
 * Shows how a wait is going on stderr (stdout stays clean for the result). On
 * a terminal one line is rewritten in place with the elapsed time; otherwise
 * (a log, a pipe) a line is written only when the state changes.
 */
export class Progress {
  private shown = '';
  private lineOpen = false;
  private readonly started: number;

  constructor(
    private readonly stream: OutputStream,
    private readonly now: () => number,
  ) {
    this.started = now();
  }

  update(text: string): void {
    if (this.stream.isTTY) {
      const seconds = Math.floor((this.now() - this.started) / 1000);
      this.stream.write(`\r\x1b[2K${text} (${seconds}s)`);
      this.lineOpen = true;
    } else if (text !== this.shown) {
      this.stream.write(`${text}\n`);
    }
    this.shown = text;
  }

  /** Ends the in-place line so what follows starts on its own line. */
  finish(): void {
    if (this.lineOpen) this.stream.write('\n');
    this.lineOpen = false;
  }
}
