import { parentPort, workerData } from 'node:worker_threads';
import { watchInvariants } from './invariants.js';
import { watchHypervisors } from './observer.js';

/**
 * One during-load sampler, in a worker thread of the soak: their reads are
 * synchronous (SQLite, and on lvm-iscsi a `hostsim lvs` process that takes
 * seconds on a loaded machine). On the soak's main thread they held up the
 * clients and the proxies every delegate call goes through; in one thread
 * together, the slow one held up the hypervisor samples.
 */
const { dir, which, everyMs } = workerData as { dir: string; which: 'invariants' | 'hypervisors'; everyMs: number };
if (which === 'invariants') {
  const watch = watchInvariants(dir, everyMs);
  parentPort!.once('message', () => parentPort!.postMessage({ violations: watch.stop().map((violation) => ({ violation })), samples: 0 }));
} else {
  const watch = watchHypervisors(dir, everyMs);
  parentPort!.once('message', () => void watch.stop().then((seen) => parentPort!.postMessage(seen)));
}
