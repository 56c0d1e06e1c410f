import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy on 127.0.0.1 between the front and one delegate, which the
 * chaos can make misbehave on the next request that passes:
 *
 * - `cut`: the request is delivered, then the connection is cut before the
 *   answer reaches the front (at the answer's first bytes, or after a delay
 *   while the delegate still works): the front cannot know what was done.
 * - `stall`: the request is held for a while (past the front's call
 *   timeout), then delivered anyway, after the front gave up on it: a late
 *   request from a caller that has since moved on.
 *
 * The traffic is mutual TLS, which the proxy forwards without reading. It
 * tells requests from the handshake by counting turns (a turn is a run of
 * bytes in one direction): a TLS 1.3 handshake with client certificates
 * takes the client's turns 1 and 3 (hello; certificate and finished), and
 * the server's turns 2 and 4 (its flight; its session tickets), so any
 * client turn from the fifth on carries a request (HTTP/1.1 keep-alive: a
 * client speaks only to ask). A request the client sent together with its
 * finished message (turn 3) is never chosen: a fault then only waits for
 * the next request.
 */
export type ProxyFault = { readonly kind: 'cut'; readonly afterMs: number } | { readonly kind: 'stall'; readonly ms: number };

/** The first client turn that is surely a request (see above). */
const FIRST_REQUEST_TURN = 5;

export class FaultyProxy {
  private readonly armed: ProxyFault[] = [];
  private readonly sockets = new Set<Socket>();
  /** Faults that took effect: what the chaos reports. */
  readonly fired = { cut: 0, stall: 0 };

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  /** Listens on 127.0.0.1 (a free port) and forwards every connection to 127.0.0.1:targetPort. */
  static async start(targetPort: number): Promise<FaultyProxy> {
    let proxy: FaultyProxy | undefined;
    const server = createServer({ allowHalfOpen: true }, (client) => proxy?.relay(client, targetPort));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    proxy = new FaultyProxy(server, (server.address() as { port: number }).port);
    return proxy;
  }

  /** Makes the next request that passes suffer `fault` (faults queue up, one per request). */
  arm(fault: ProxyFault): void {
    this.armed.push(fault);
  }

  /** Faults armed and not yet used are dropped (the chaos ends); returns how many. */
  disarm(): number {
    return this.armed.splice(0).length;
  }

  /** Stops listening and cuts every connection. */
  async close(): Promise<void> {
    this.disarm();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private track(s: Socket): void {
    this.sockets.add(s);
    s.once('close', () => this.sockets.delete(s));
    s.on('error', () => s.destroy());
  }

  private relay(client: Socket, targetPort: number): void {
    const server = connect({ host: '127.0.0.1', port: targetPort, allowHalfOpen: true });
    this.track(client);
    this.track(server);
    let turns = 0;
    let last: 'client' | 'server' | undefined;
    const turnOf = (side: 'client' | 'server') => {
      if (last !== side) turns++;
      last = side;
      return turns;
    };
    /** The fault this connection's current request suffers, once one was taken. */
    let fault: ProxyFault | undefined;
    let held: Buffer[] | undefined;
    let cutting = false;
    const cut = () => {
      cutting = true;
      client.destroy();
      server.destroy();
    };

    client.on('data', (chunk: Buffer) => {
      const turn = turnOf('client');
      if (!fault && turn >= FIRST_REQUEST_TURN && this.armed.length) {
        fault = this.armed.shift()!;
        if (fault.kind === 'cut') {
          this.fired.cut++;
          setTimeout(cut, fault.afterMs).unref();
        } else {
          this.fired.stall++;
          held = [];
          // After the stall, the request goes to the delegate even if the client is gone meanwhile.
          setTimeout(() => {
            const data = held ?? [];
            held = undefined;
            if (server.destroyed) return;
            for (const b of data) server.write(b);
            if (client.destroyed || client.readableEnded) server.end();
          }, fault.ms).unref();
        }
      }
      if (held) held.push(chunk);
      else server.write(chunk);
    });
    client.on('end', () => {
      if (!held) server.end();
    });
    // A stalled request's client that gave up: keep the delegate's side open until the request was delivered.
    client.on('close', () => {
      if (!held && !cutting) server.end();
    });

    server.on('data', (chunk: Buffer) => {
      turnOf('server');
      // The answer to a request that is to be cut: it never reaches the client.
      if (fault?.kind === 'cut') return cut();
      if (!client.destroyed) client.write(chunk);
    });
    server.on('end', () => client.end());
    server.on('close', () => {
      if (!held) client.destroy();
    });
  }
}
