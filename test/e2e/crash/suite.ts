import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, FILE_BACKEND, type Backend } from './cluster.js';
import { crashTargets, expectBaseline, runCrashCase, Tools, VMS, type CrashTarget, type Scenario } from './matrix.js';

const CASE_TIMEOUT_MS = 120_000;

/**
 * One shared cluster for a file's cases, run one after the other. A case that
 * fails may leave the cluster in any state, so the next case gets a new one.
 */
export class SharedCluster {
  private cluster: Cluster | undefined;
  private tools: Tools | undefined;
  private dirty = false;

  constructor(readonly backend: Backend = FILE_BACKEND) {}

  register(): void {
    beforeAll(async () => {
      this.cluster = await Cluster.create(VMS, this.backend);
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
      this.cluster = await Cluster.create(VMS, this.backend);
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

/**
 * Every crash case of each scenario, as one test each (or those `only`
 * keeps: a sample). On the lvm-iscsi back end every step does real work, so
 * each delegate must really die at each of its points, except in operations
 * the scenario says the front does not send there (`notCalledOnIscsi`).
 */
export function crashMatrix(shared: SharedCluster, scenarios: readonly Scenario[], only: (s: Scenario, target: CrashTarget) => boolean = () => true): void {
  const iscsi = shared.backend.type === 'lvm-iscsi';
  for (const s of scenarios) {
    describe(s.title, () => {
      // Guards the fault injection itself: some delegate step of every operation must really die.
      const targets = crashTargets(s).filter((target) => only(s, target));
      let delegateCrashes = 0;
      let delegateCases = 0;
      afterAll(() => {
        // Only meaningful when every delegate case ran (not under a -t filter).
        const delegateTargets = targets.filter((x) => x.role !== 'front').length;
        if (delegateTargets > 0 && delegateCases === delegateTargets) {
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
                if (iscsi && !s.notCalledOnIscsi?.some((op) => target.point.includes(`.${op}/`))) {
                  expect(crashed, `the ${target.role} did not die at ${target.point}, yet on lvm-iscsi that step calls it`).toBe(true);
                }
              }
              await expectBaseline(t);
            }),
          CASE_TIMEOUT_MS,
        );
      }
    });
  }
}
