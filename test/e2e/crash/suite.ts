import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSeed, sampleOf, SEED_ENV } from '../../sampling.js';
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

/** VMM delegate operations only an iSCSI-exported volume's attach and detach send. */
const ISCSI_ONLY = ['DiscoverTarget', 'LoginTarget', 'LogoutTarget'];

/** Which of a scenario's crash targets a file runs. */
export type Choice = (s: Scenario, all: readonly CrashTarget[]) => CrashTarget[];

/** Every target: the whole cross product. */
export const everyTarget: Choice = (_, all) => [...all];

/** The targets `keep` names (a fixed choice, the same every run). */
export function kept(keep: (s: Scenario, target: CrashTarget) => boolean): Choice {
  return (s, all) => all.filter((target) => keep(s, target));
}

/**
 * The points after which the hosts hold a state of their own: each delegate
 * killed before and after each of its operations, and the front killed after
 * each step has acted (after each step but the last; for the last, before the
 * transaction that journals it done with the commit). The front's other
 * points (before a step; once the last step and the commit are journaled)
 * leave the hosts as one of these does (a step journaled but never sent is a
 * delegate killed before acting); what differs there is only the front's
 * journal, whose recovery paths the sample below covers over runs.
 */
export function isHostStatePoint(target: CrashTarget): boolean {
  if (target.role !== 'front') return true;
  return !target.committed && /\/([0-9]+\/after|commit)$/.test(target.point);
}

/** The share of the front's journal-only points a run of the file back end's matrix samples. */
export const SAMPLED_SHARE = 1 / 3;

/**
 * The targets `always` keeps, and of the others that `among` admits `share`
 * (at least one), chosen by the run's seed (test/sampling.ts), so that
 * successive runs go through all of them. The choice is printed, and
 * VBS_TEST_SEED repeats it.
 */
export function alwaysAndSample(always: (target: CrashTarget) => boolean, share: number, among: (target: CrashTarget) => boolean = () => true): Choice {
  return (s, all) => {
    const kept = all.filter(always);
    const rest = all.filter((target) => !always(target) && among(target));
    const seed = runSeed();
    const chosen = sampleOf(rest, Math.max(1, Math.ceil(rest.length * share)), s.title, seed);
    console.log(
      `crash matrix, ${s.title}: ${kept.length} cases always, and ${chosen.length} of ${rest.length} sampled (${SEED_ENV}=${seed}): ${chosen.map((target) => target.point).join(', ')}`,
    );
    return all.filter((target) => kept.includes(target) || chosen.includes(target));
  };
}

/** Every host-state point (isHostStatePoint), and `share` of the front's other points. */
export function hostStatesAndSample(share: number): Choice {
  return alwaysAndSample(isHostStatePoint, share);
}

/**
 * Every crash case of each scenario that `choose` keeps, as one test each. On
 * the lvm-iscsi back end every step does real work, so each delegate must
 * really die at each of its points, except in operations the scenario says
 * the front does not send there (`notCalledOnIscsi`).
 */
export function crashMatrix(shared: SharedCluster, scenarios: readonly Scenario[], choose: Choice = everyTarget): void {
  const iscsi = shared.backend.type === 'lvm-iscsi';
  // A file volume needs no iSCSI session: its attach and detach never send these, so killing the
  // delegate there would crash nothing. The lvm-iscsi matrix kills it where they are sent; an rbd
  // attach sends them too (the host checks it can open rbd images, and keeps its libvirt secret).
  const exported = shared.backend.type !== 'file';
  const sent = (target: CrashTarget) => exported || target.role === 'front' || !ISCSI_ONLY.some((op) => target.point.includes(`.${op}/`));
  for (const s of scenarios) {
    describe(s.title, () => {
      // Guards the fault injection itself: some delegate step of every operation must really die.
      const targets = choose(s, crashTargets(s).filter(sent));
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
