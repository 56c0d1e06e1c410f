import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from './cluster.js';
import { crashTargets, expectBaseline, runCrashCase, Tools, VMS, type Scenario } from './matrix.js';

const CASE_TIMEOUT_MS = 120_000;

/**
 * One shared cluster for a file's cases, run one after the other. A case that
 * fails may leave the cluster in any state, so the next case gets a new one.
 */
export class SharedCluster {
  private cluster: Cluster | undefined;
  private tools: Tools | undefined;
  private dirty = false;

  register(): void {
    beforeAll(async () => {
      this.cluster = await Cluster.create(VMS);
      this.tools = new Tools(this.cluster);
    });
    afterAll(async () => {
      await this.cluster?.destroy();
    });
  }

  /** Runs `body` with the cluster's tools; a failure marks the cluster for replacement. */
  async use(body: (t: Tools) => Promise<void>): Promise<void> {
    if (this.dirty || !this.tools) {
      await this.cluster?.destroy();
      this.cluster = await Cluster.create(VMS);
      this.tools = new Tools(this.cluster);
      this.dirty = false;
    }
    try {
      await body(this.tools);
    } catch (err) {
      this.dirty = true;
      throw err;
    }
  }
}

/** Every crash case of each scenario, as one test each. */
export function crashMatrix(shared: SharedCluster, scenarios: readonly Scenario[]): void {
  for (const s of scenarios) {
    describe(s.title, () => {
      // Guards the fault injection itself: some delegate step of every operation must really die.
      const targets = crashTargets(s);
      let delegateCrashes = 0;
      let delegateCases = 0;
      afterAll(() => {
        // Only meaningful when every delegate case ran (not under a -t filter).
        if (delegateCases === targets.filter((x) => x.role !== 'front').length) {
          expect(delegateCrashes, `no delegate died in any step of ${s.title}`).toBeGreaterThan(0);
        }
      });
      for (const target of targets) {
        it(
          target.label,
          () =>
            shared.use(async (t) => {
              const { crashed } = await runCrashCase(t, s, target);
              // The front passes every one of its points; a delegate may not be called by a step with nothing to do.
              if (target.role === 'front') expect(crashed, `the front did not die at ${target.point}`).toBe(true);
              else {
                delegateCases++;
                if (crashed) delegateCrashes++;
              }
              await expectBaseline(t);
            }),
          CASE_TIMEOUT_MS,
        );
      }
    });
  }
}
