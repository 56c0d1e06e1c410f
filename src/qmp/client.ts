import { createConnection, type Socket } from 'node:net';

/**
 * A minimal client of QEMU's machine protocol (QMP) on a unix socket: one
 * JSON object a line; after the greeting and `qmp_capabilities`, each command
 * gets one `return` or `error` reply, and events (`{"event": ...}`) may
 * arrive at any time in between. One command in flight at a time.
 */
export interface QmpEvent {
  readonly event: string;
  readonly data?: Record<string, unknown>;
}

export class QmpError extends Error {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super(`${command}: ${desc}`);
  }
}

/** How long one command may take: blockdev-add of an iSCSI LUN connects to its portal first. */
const COMMAND_TIMEOUT_MS = 30_000;
const MAX_EVENTS = 100;
/** A reply line longer than this is not QMP talking: the connection is dropped. */
const MAX_LINE = 4 * 1024 * 1024;

export class QmpClient {
  private buffer = '';
  private readonly events: QmpEvent[] = [];
  private waiter: ((msg: Record<string, unknown> | Error) => void) | undefined;
  private closedWith: Error | undefined;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('QMP connection closed')));
  }

  /** Connects, reads the greeting and enters command mode; everything within timeoutMs. */
  static async connect(socketPath: string, timeoutMs: number): Promise<QmpClient> {
    const socket = createConnection(socketPath);
    const client = new QmpClient(socket);
    try {
      await withTimeout(
        (async () => {
          const greeting = await client.next();
          if (!('QMP' in greeting)) throw new Error('the socket did not greet as QMP');
          await client.execute('qmp_capabilities');
        })(),
        timeoutMs,
        `QMP at ${socketPath} did not answer within ${timeoutMs} ms (is the VM running, or another client connected?)`,
      );
    } catch (err) {
      client.close();
      throw err;
    }
    return client;
  }

  /**
   * Runs a command and returns its `return` value; a QMP `error` reply throws
   * QmpError. A QEMU that does not answer within timeoutMs (its main loop
   * stuck, on storage that went away) is an error too; the connection is then
   * closed, since a late reply would be taken for the next command's.
   */
  async execute(command: string, args?: Record<string, unknown>, timeoutMs = COMMAND_TIMEOUT_MS): Promise<unknown> {
    this.socket.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`);
    try {
      return await withTimeout(this.reply(command), timeoutMs, `QEMU did not answer ${command} within ${timeoutMs} ms`);
    } catch (err) {
      if (!(err instanceof QmpError)) this.close();
      throw err;
    }
  }

  private async reply(command: string): Promise<unknown> {
    for (;;) {
      const msg = await this.next();
      if ('event' in msg) {
        // Kept for waitForEvent; only the latest few matter (bounded).
        if (this.events.push(msg as unknown as QmpEvent) > MAX_EVENTS) this.events.shift();
        continue;
      }
      if ('error' in msg) {
        const e = msg.error as { class?: string; desc?: string };
        throw new QmpError(command, e.class ?? 'GenericError', e.desc ?? 'failed');
      }
      if ('return' in msg) return msg.return;
    }
  }

  /** Waits for an event matching `accept` (seen already, or arriving within timeoutMs). */
  async waitForEvent(accept: (e: QmpEvent) => boolean, timeoutMs: number, what: string): Promise<QmpEvent> {
    const seen = this.events.findIndex(accept);
    if (seen >= 0) return this.events.splice(seen, 1)[0]!;
    return withTimeout(
      (async () => {
        for (;;) {
          const msg = await this.next();
          if ('event' in msg && accept(msg as unknown as QmpEvent)) return msg as unknown as QmpEvent;
        }
      })(),
      timeoutMs,
      `no ${what} within ${timeoutMs} ms`,
    );
  }

  close(): void {
    this.socket.destroy();
  }

  private next(): Promise<Record<string, unknown>> {
    const line = this.takeLine();
    if (line !== undefined) return Promise.resolve(parseLine(line));
    if (this.closedWith) return Promise.reject(this.closedWith);
    return new Promise((resolve, reject) => {
      this.waiter = (msg) => (msg instanceof Error ? reject(msg) : resolve(msg));
    });
  }

  private takeLine(): string | undefined {
    for (;;) {
      const nl = this.buffer.indexOf('\n');
      if (nl < 0) return undefined;
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (line) return line;
    }
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    if (this.buffer.length > MAX_LINE) {
      this.fail(new Error('QMP sent an over-long line'));
      this.socket.destroy();
      return;
    }
    if (!this.waiter) return;
    const line = this.takeLine();
    if (line === undefined) return;
    const waiter = this.waiter;
    this.waiter = undefined;
    try {
      waiter(parseLine(line));
    } catch (err) {
      waiter(err as Error);
    }
  }

  private fail(err: Error): void {
    this.closedWith ??= err;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.(this.closedWith);
  }
}

function parseLine(line: string): Record<string, unknown> {
  const msg = JSON.parse(line) as unknown;
  if (!msg || typeof msg !== 'object' || Array.isArray(msg)) throw new Error('QMP sent something other than a JSON object');
  return msg as Record<string, unknown>;
}

async function withTimeout<T>(work: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
