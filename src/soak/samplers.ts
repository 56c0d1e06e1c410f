import { Worker } from 'node:worker_threads';
import type { SeenViolation } from './observer.js';

export interface SamplerResult {
  /** The metadata invariants that must hold at every instant (src/soak/invariants.ts, `quiet: false`). */
  readonly invariants: string[];
  /** How many hypervisor samples were taken, and what they saw (src/soak/observer.ts). */
  readonly samples: number;
  readonly hypervisors: SeenViolation[];
}

interface Seen {
  samples: number;
  violations: { violation: string; time?: string }[];
}

/** One sampler in a worker thread; `stop()` ends it and returns what it saw. */
function startWorker(dir: string, which: 'invariants' | 'hypervisors', everyMs: number): () => Promise<Seen> {
  const worker = new Worker(new URL('./sampler-worker.js', import.meta.url), { workerData: { dir, which, everyMs } });
  let failed: Error | undefined;
  worker.once('error', (err) => (failed = err));
  return async () => {
    const fail = (err: Error): Seen => ({ samples: 0, violations: [{ violation: `the ${which} sampler failed: ${err.message}` }] });
    if (failed) return fail(failed);
    const result = new Promise<Seen>((resolve) => {
      worker.once('message', resolve);
      worker.once('error', (err) => resolve(fail(err)));
    });
    worker.postMessage('stop');
    const r = await result;
    await worker.terminate();
    return r;
  };
}

/**
 * Starts both during-load samplers, each in a worker thread of its own (see
 * sampler-worker.ts); `stop()` ends them and returns what they saw.
 */
export function startSamplers(dir: string, invariantsEveryMs: number, hypervisorsEveryMs: number): { stop(): Promise<SamplerResult> } {
  const invariants = startWorker(dir, 'invariants', invariantsEveryMs);
  const hypervisors = startWorker(dir, 'hypervisors', hypervisorsEveryMs);
  return {
    async stop() {
      const [inv, hyp] = await Promise.all([invariants(), hypervisors()]);
      return {
        invariants: inv.violations.map((v) => v.violation),
        samples: hyp.samples,
        hypervisors: hyp.violations.map((v) => ({ time: v.time ?? '', violation: v.violation })),
      };
    },
  };
}
