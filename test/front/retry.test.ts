import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { VbsError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/log.js';
import { DelegatePool, type DelegateClient } from '../../src/front/delegates.js';
import { DelegateHealth } from '../../src/front/health.js';
import { PkiStore } from '../../src/pki/store.js';
import { RetryingDelegate } from '../../src/front/retry.js';
import { VOLUME_DELEGATE_SERVICE } from '../../src/services/volume-delegate.js';
import { SoapClient, TimeoutError } from '../../src/soap/client.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';

const noSleep = async () => {};

/** Fails its first calls with the given errors, then answers. */
class Flaky implements DelegateClient {
  calls = 0;
  constructor(private readonly errors: Error[]) {}
  async call(): Promise<XmlRecord> {
    const err = this.errors[this.calls++];
    if (err) throw err;
    return { ok: true };
  }
}

const refused = () => new VbsError('ServiceUnavailable', 'could not be reached', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
const timedOut = () => new VbsError('ServiceUnavailable', 'did not answer', { cause: new TimeoutError(10) });

describe('RetryingDelegate', () => {
  it('sends a call that could not reach its delegate again, and returns the answer', async () => {
    const inner = new Flaky([refused(), refused()]);
    await expect(new RetryingDelegate(inner, { attempts: 3, firstDelayMs: 1 }, noSleep).call('GetCapacity', {})).resolves.toEqual({ ok: true });
    expect(inner.calls).toBe(3);
  });

  it('gives up after the bounded number of attempts with the last error', async () => {
    const inner = new Flaky([refused(), refused(), refused(), refused()]);
    await expect(new RetryingDelegate(inner, { attempts: 3, firstDelayMs: 1 }, noSleep).call('GetCapacity', {})).rejects.toMatchObject({
      code: 'ServiceUnavailable',
    });
    expect(inner.calls).toBe(3);
  });

  it('does not repeat a call that timed out: the delegate may still be acting on it', async () => {
    const inner = new Flaky([timedOut()]);
    await expect(new RetryingDelegate(inner, undefined, noSleep).call('CreateVolume', {})).rejects.toMatchObject({ code: 'ServiceUnavailable' });
    expect(inner.calls).toBe(1);
  });

  it("does not repeat a delegate's own answer", async () => {
    const inner = new Flaky([new VbsError('InsufficientCapacity', 'full')]);
    await expect(new RetryingDelegate(inner, undefined, noSleep).call('CreateVolume', {})).rejects.toMatchObject({ code: 'InsufficientCapacity' });
    expect(inner.calls).toBe(1);
  });

  it('backs off between attempts, doubling the wait', async () => {
    const waits: number[] = [];
    const inner = new Flaky([refused(), refused()]);
    await new RetryingDelegate(inner, { attempts: 3, firstDelayMs: 50 }, async (ms) => void waits.push(ms)).call('X', {});
    expect(waits).toEqual([50, 100]);
  });

  it('classifies a real refused connection as worth retrying', async () => {
    // A port that was free a moment ago and has nothing listening now.
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const dir = mkdtempSync(join(tmpdir(), 'vbs-retry-'));
    const pki = new PkiStore(dir);
    pki.ensureCa();
    pki.ensureIdentity('front', { commonName: 'vbs-front', use: 'client' });
    const tls = { key: readFileSync(join(dir, 'front.key')), cert: readFileSync(join(dir, 'front.crt')), ca: readFileSync(join(dir, 'ca.crt')) };
    rmSync(dir, { recursive: true, force: true });
    const client = new SoapClient({ def: VOLUME_DELEGATE_SERVICE, url: `https://127.0.0.1:${port}/volume-delegate`, tls, timeoutMs: 2_000 });
    let attempts = 0;
    const counting: DelegateClient = { call: (op, i) => (attempts++, client.call(op, i)) };
    await expect(new RetryingDelegate(counting, { attempts: 2, firstDelayMs: 1 }).call('GetCapacity', {})).rejects.toMatchObject({
      code: 'ServiceUnavailable',
    });
    expect(attempts).toBe(2);
    client.close();
  });
});

describe('DelegateHealth', () => {
  it('reconciles a delegate once when it comes back, not while it is up or down', async () => {
    let up = true;
    const delegate: DelegateClient = {
      call: async () => {
        if (!up) throw new VbsError('ServiceUnavailable', 'down');
        return {};
      },
    };
    const pool = new DelegatePool(new Map([['local', delegate]]), new Map([['localhost', delegate]]));
    const returned: string[] = [];
    const health = new DelegateHealth(pool, silentLogger, 60_000, async (t) => void returned.push(`${t.kind}:${t.name}`));
    await health.probeOnce();
    expect(returned).toEqual([]);
    up = false;
    await health.probeOnce();
    await health.probeOnce();
    expect(health.unreachable()).toEqual(['vmm-host:localhost', 'volume-delegate:local']);
    expect(returned).toEqual([]);
    up = true;
    await health.probeOnce();
    await health.probeOnce();
    expect(returned.sort()).toEqual(['vmm-host:localhost', 'volume-delegate:local']);
    expect(health.unreachable()).toEqual([]);
  });
});
