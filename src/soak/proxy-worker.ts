import { parentPort, workerData } from 'node:worker_threads';
import { FaultyProxy, type ProxyFault } from './proxy.js';

/** One FaultyProxy in a worker thread of its own (see proxy-thread.ts). */
export type ProxyCommand = { readonly arm: ProxyFault } | { readonly disarm: true } | { readonly close: true };

const proxy = await FaultyProxy.start((workerData as { targetPort: number }).targetPort);
const port = parentPort!;
port.postMessage({ port: proxy.port });
let reported = '';
// What fired, whenever it changes (the main thread reads it at the end).
const report = setInterval(() => {
  const now = JSON.stringify(proxy.fired);
  if (now !== reported) port.postMessage({ fired: { ...proxy.fired } });
  reported = now;
}, 100);
port.on('message', (m: ProxyCommand) => {
  if ('arm' in m) proxy.arm(m.arm);
  if ('disarm' in m) proxy.disarm();
  if ('close' in m) {
    clearInterval(report);
    void proxy.close().then(() => port.postMessage({ closed: true, fired: { ...proxy.fired } }));
  }
});
