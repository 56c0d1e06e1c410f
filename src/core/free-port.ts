import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/**
 * A TCP port of 127.0.0.1 that was free a moment ago. Someone else may take
 * it before the caller binds it; callers that cannot retry bind port 0.
 *
 * It is picked below the kernel's ephemeral range: a port from that range
 * (what `listen(0)` hands out) is also what every outgoing connection on the
 * machine takes as its source port, so under load one often took the port
 * between our look and the service's bind (EADDRINUSE). Below the range only
 * another picker like this one can take it. Where the range leaves no room,
 * it falls back to the kernel's choice.
 */
export async function freePort(): Promise<number> {
  const [low] = ephemeralRange();
  const floor = 10_000;
  if (low - floor >= 1_000) {
    for (let i = 0; i < 50; i++) {
      const port = floor + Math.floor(Math.random() * (low - floor));
      if (await bindable(port)) return port;
    }
  }
  return kernelPort();
}

function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && Number.isInteger(high)) return [low!, high!];
  } catch {
    // not Linux: the kernel's choice below
  }
  return [0, 0];
}

function bindable(port: number): Promise<boolean> {
  return new Promise((done) => {
    const s = createServer();
    s.once('error', () => done(false));
    s.listen(port, '127.0.0.1', () => s.close(() => done(true)));
  });
}

function kernelPort(): Promise<number> {
  return new Promise((done, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => done(port));
    });
  });
}
