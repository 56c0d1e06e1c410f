import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, createServer, request, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDeploymentPki } from '../../src/deploy/all-in-one.js';
import { FaultyProxy } from '../../src/soak/proxy.js';

/**
 * The soak's faulty proxy between a mutual-TLS client (keep-alive, as the
 * front's SOAP client) and a mutual-TLS server (as a delegate): it forwards
 * untouched, cuts a connection after the request was delivered and before
 * the answer, and delivers a stalled request after its client gave up.
 */
const dir = mkdtempSync(join(tmpdir(), 'vbs-soak-proxy-'));
let server: Server;
let proxy: FaultyProxy;
let agent: Agent;
/** Every request body the server received, in order, and who waits for the next one. */
const received: string[] = [];
let onReceived: ((body: string) => void) | undefined;

beforeAll(async () => {
  ensureDeploymentPki(dir);
  const pem = (f: string) => readFileSync(join(dir, 'pki', f));
  server = createServer({ key: pem('volume-delegate.key'), cert: pem('volume-delegate.crt'), ca: pem('ca.crt'), requestCert: true, rejectUnauthorized: true }, (req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      received.push(body);
      onReceived?.(body);
      res.end(`done ${body}`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  proxy = await FaultyProxy.start((server.address() as { port: number }).port);
  agent = new Agent({ keepAlive: true, maxSockets: 1, key: pem('front.key'), cert: pem('front.crt'), ca: pem('ca.crt') });
});

afterAll(async () => {
  agent.destroy();
  await proxy.close();
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

/** A POST through the proxy (or another port); resolves with the answer or rejects with the error. */
function post(body: string, timeoutMs = 60_000, port = proxy.port): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/', agent, timeout: timeoutMs }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve(text));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

function nextReceived(): Promise<string> {
  return new Promise((r) => (onReceived = r));
}

describe('the soak\'s faulty proxy', () => {
  it('forwards requests and answers untouched on a kept-alive connection', async () => {
    expect(await post('one')).toBe('done one');
    expect(await post('two')).toBe('done two');
    expect(await post('three')).toBe('done three');
  });

  it('cuts a connection after the request reached the server and before its answer', async () => {
    await post('warm-up'); // an established connection, past its handshake
    proxy.arm({ kind: 'cut', afterMs: 60_000 });
    const arrived = nextReceived();
    await expect(post('cut me')).rejects.toThrow();
    expect(await arrived).toBe('cut me');
    expect(proxy.fired.cut).toBe(1);
    // The next request goes through on a new connection.
    expect(await post('after')).toBe('done after');
  });

  it('delivers a stalled request after its client gave up', async () => {
    await post('warm-up');
    proxy.arm({ kind: 'stall', ms: 1_500 });
    const order: string[] = [];
    const arrived = nextReceived().then((body) => order.push(`server got ${body}`));
    await post('late', 200).catch(() => order.push('client gave up'));
    await arrived;
    expect(order).toEqual(['client gave up', 'server got late']);
    expect(proxy.fired.stall).toBe(1);
    expect(await post('after')).toBe('done after');
  });

  it('drops the faults the chaos armed and no request used', () => {
    proxy.arm({ kind: 'cut', afterMs: 0 });
    expect(proxy.disarm()).toBe(1);
    expect(proxy.disarm()).toBe(0);
  });

  it('does the same from a worker thread of its own (as the soak runs it)', async () => {
    // The built module: its worker is a built file, as the soak runs it (the test command builds first).
    const built = new URL('../../dist/soak/proxy-thread.js', import.meta.url).href;
    const { ProxyThread } = (await import(built)) as typeof import('../../src/soak/proxy-thread.js');
    const thread = await ProxyThread.start((server.address() as { port: number }).port);
    try {
      expect(await post('one', 60_000, thread.port)).toBe('done one');
      thread.arm({ kind: 'cut', afterMs: 60_000 });
      const arrived = nextReceived();
      await expect(post('cut me too', 60_000, thread.port)).rejects.toThrow();
      expect(await arrived).toBe('cut me too');
      expect(await post('after', 60_000, thread.port)).toBe('done after');
    } finally {
      await thread.close();
    }
    expect(thread.fired.cut).toBe(1);
  });
});
