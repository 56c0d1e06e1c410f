import { createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';

/**
 * One append-only log file per service in DIR/logs, opened once and shared by
 * every process of that service (a restart writes after the crash it follows)
 * and by the supervisor's own lines about it.
 */
export class LogFiles {
  private readonly streams = new Map<string, WriteStream>();

  constructor(private readonly dir: string) {}

  path(service: string): string {
    return join(this.dir, `${service}.log`);
  }

  stream(service: string): WriteStream {
    let s = this.streams.get(service);
    if (!s) {
      s = createWriteStream(this.path(service), { flags: 'a', mode: 0o600 });
      // A log that cannot be written (disk full; a last line of a child's
      // output after close) must not bring the supervisor down with it.
      s.on('error', () => {});
      this.streams.set(service, s);
    }
    return s;
  }

  /** A line in the services' JSON log format, from the supervisor (its pid, `source: "vbs up"`). */
  line(service: string, level: 'info' | 'warn' | 'error', msg: string, fields: object): void {
    const record = { time: new Date().toISOString(), level, pid: process.pid, source: 'vbs up', msg, ...fields };
    this.stream(service).write(`${JSON.stringify(record)}\n`);
  }

  async close(): Promise<void> {
    const all = [...this.streams.values()];
    this.streams.clear();
    await Promise.all(all.map((s) => new Promise<void>((r) => s.end(() => r()))));
  }
}
