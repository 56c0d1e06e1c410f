import { Worker } from 'node:worker_threads';
import type { ProxyFault } from './proxy.js';
import type { ProxyCommand } from './proxy-worker.js';

/**
 * A FaultyProxy run in a worker thread: the soak's main thread reads the
 * deployment synchronously (SQLite, `hostsim lvs`, seconds each on a loaded
 * machine), and a proxy on that thread held every delegate call up while it
 * did: the front then timed out on calls that were only waiting for the
 * soak. Same interface as FaultyProxy.
 */
export class ProxyThread {
  /** Faults that took effect, as the worker last reported them. */
  fired = { cut: 0, stall: 0 };

  private constructor(
    private readonly worker: Worker,
    readonly port: number,
  ) {
    worker.on('message', (m: { fired?: { cut: number; stall: number } }) => {
      if (m.fired) this.fired = m.fired;
    });
  }

  static start(targetPort: number): Promise<ProxyThread> {
    const worker = new Worker(new URL('./proxy-worker.js', import.meta.url), { workerData: { targetPort } });
    return new Promise((resolve, reject) => {
      worker.once('error', reject);
      worker.once('message', (m: { port: number }) => resolve(new ProxyThread(worker, m.port)));
    });
  }

  arm(fault: ProxyFault): void {
    this.send({ arm: fault });
  }

  disarm(): void {
    this.send({ disarm: true });
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((r) => this.worker.on('message', (m: { closed?: boolean }) => m.closed && r()));
    this.send({ close: true });
    await closed;
    await this.worker.terminate();
  }

  private send(m: ProxyCommand): void {
    this.worker.postMessage(m);
  }
}
