import Database from 'better-sqlite3';
import { readState } from '../sim/state.js';
import { deploymentView, qemuVms, volumeOfDiskTarget, type DeploymentView } from './invariants.js';

/**
 * The observer that samples the hypervisors *during* the load (issue 16):
 * every few hundred milliseconds it reads, read-only, the front's metadata
 * and every simulated VMM host's disks, and checks the two rules that must
 * hold at every instant:
 *
 * - no volume is read-write on two VMs (one read of the simulator's state
 *   document, which the simulator replaces by rename: one instant);
 * - no volume is on a VM while its record is deleted or has no attachment
 *   there (an `available` volume, or one attached elsewhere).
 *
 * The second rule compares two sides read at different instants, so the
 * order matters. The rule the engine keeps is that an attachment row's life
 * covers its disk's life: the row (attaching) is written before the disk is
 * added, and removed only after the disk is gone. So the observer reads the
 * metadata (M1), then the hosts (H), then the metadata again (M2). A disk
 * seen in H was on the VM at an instant between M1 and M2; if the row
 * covered it, the row existed at that instant, and is absent from both M1
 * and M2 only when a whole attach (or an attach and its rollback) began
 * and ended between the two reads. That can only be the work of a workflow
 * on the volume that began after M1, or that was running at M1 and wrote its
 * journal between the reads (the journal is written before and after each
 * step, and its row changes with it). So a disk is reported only when its
 * row is absent from both reads AND no workflow on its volume began or moved
 * in between. A workflow that runs on but does nothing (waits on a stalled
 * call) excuses nothing. The next sample looks again, so a skipped window
 * costs a sample, never a missed bug that lasts.
 */

/** A VBS disk on a VM, as one host's state showed it. */
export interface InstantDisk {
  readonly host: string;
  readonly vm: string;
  readonly dev: string;
  readonly volumeId: string;
  readonly mode: string;
}

/** What one metadata read shows of the attachments and of the workflows' progress. */
export interface InstantMetadata {
  readonly volumes: ReadonlyMap<string, string>; // volume id → status
  /** `volumeId host vm` of every attachment row, whatever its status. */
  readonly attachments: ReadonlySet<string>;
  /** The highest workflow id so far (workflows are numbered in the order they begin). */
  readonly maxWorkflowId: number;
  /**
   * Workflows as their journal stands: the running ones, and those asked for
   * (M2: the ones running at M1, and every one begun since). `mark` changes
   * with each journal write (its state, steps and their states).
   */
  readonly workflows: ReadonlyMap<number, { readonly resource: string; readonly mark: string }>;
}

const key = (volumeId: string, host: string, vm: string) => `${volumeId} ${host} ${vm}`;

/** The violations of one sample (M1, H, M2 read in that order). */
export function judgeInstant(m1: InstantMetadata, disks: readonly InstantDisk[], m2: InstantMetadata): string[] {
  const bad: string[] = [];
  const writers = new Map<string, InstantDisk[]>();
  for (const d of disks) if (d.mode === 'w') writers.set(d.volumeId, [...(writers.get(d.volumeId) ?? []), d]);
  for (const [id, list] of writers) {
    const vms = new Set(list.map((d) => `${d.vm}@${d.host}`));
    if (vms.size > 1) bad.push(`${id} is read-write on ${[...vms].sort().join(' and ')} at once`);
  }
  // Volumes a workflow acted on between the reads: begun since M1, or running at M1 and its journal moved since.
  const busy = new Set<string>();
  for (const [id, w] of m2.workflows) if (id > m1.maxWorkflowId || m1.workflows.get(id)?.mark !== w.mark) busy.add(w.resource);
  for (const [id, w] of m1.workflows) if (!m2.workflows.has(id)) busy.add(w.resource);
  for (const d of disks) {
    const k = key(d.volumeId, d.host, d.vm);
    if (m1.attachments.has(k) || m2.attachments.has(k) || busy.has(d.volumeId)) continue;
    const status = m2.volumes.get(d.volumeId);
    const record = status === undefined ? 'deleted' : status;
    bad.push(`${d.volumeId} is on ${d.vm}/${d.dev} at ${d.host} (mode ${d.mode}) while its record is ${record} with no attachment there`);
  }
  return bad;
}

/** One read transaction of what judgeInstant needs; `after` (M2) asks for the workflows M1 saw running, and those begun since. */
export function readInstantMetadata(database: string, after?: InstantMetadata): InstantMetadata {
  const db = new Database(database, { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 10000');
    return db.transaction(() => {
      const volumes = db.prepare('SELECT volume_id, status FROM volumes').all() as { volume_id: string; status: string }[];
      const attachments = db.prepare('SELECT volume_id, vmm_host, vm_id FROM attachments').all() as { volume_id: string; vmm_host: string; vm_id: string }[];
      const max = (db.prepare('SELECT COALESCE(MAX(id), 0) AS n FROM workflows').get() as { n: number }).n;
      const journal = `SELECT w.id, w.resource_id, w.state || ' ' || w.updated_at || ' ' ||
          COALESCE((SELECT group_concat(s.idx || ':' || s.state || ':' || s.updated_at) FROM workflow_steps s WHERE s.workflow_id = w.id), '') AS mark
        FROM workflows w`;
      const rows = (
        after
          ? db.prepare(`${journal} WHERE w.id > ? OR w.id IN (SELECT value FROM json_each(?))`).all(after.maxWorkflowId, JSON.stringify([...after.workflows.keys()]))
          : db.prepare(`${journal} WHERE w.state = 'running'`).all()
      ) as { id: number; resource_id: string; mark: string }[];
      return {
        volumes: new Map(volumes.map((v) => [v.volume_id, v.status])),
        attachments: new Set(attachments.map((a) => key(a.volume_id, a.vmm_host, a.vm_id))),
        maxWorkflowId: max,
        workflows: new Map(rows.map((r) => [r.id, { resource: r.resource_id, mark: r.mark }])),
      };
    })();
  } finally {
    db.close();
  }
}

/** The VBS disks on every simulated VMM host, each host's state document read once. */
export function readInstantDisks(view: DeploymentView): InstantDisk[] {
  const disks: InstantDisk[] = [];
  for (const host of view.vmmHosts) {
    if (!host.simState && !host.qmpDir) continue;
    // A qemu host's VMs are asked one after the other (see qemuVms): close to one instant, not exactly.
    for (const vm of host.qmpDir ? qemuVms(host.qmpDir) : readState(host.simState!).vms) {
      for (const d of vm.disks) {
        const volumeId = volumeOfDiskTarget(d.target);
        if (volumeId?.startsWith('vol-')) disks.push({ host: host.name, vm: vm.name, dev: d.dev, volumeId, mode: d.mode });
      }
    }
  }
  return disks;
}

/** One sample: M1, H, M2, judged. */
export function sampleInstant(view: DeploymentView): string[] {
  const m1 = readInstantMetadata(view.database);
  const disks = readInstantDisks(view);
  const m2 = readInstantMetadata(view.database, m1);
  return judgeInstant(m1, disks, m2);
}

/** A violation, and when it was first seen. */
export interface SeenViolation {
  readonly time: string;
  readonly violation: string;
}

/**
 * Samples every `everyMs` while the load runs (each sample after the last
 * one ended, so a slow read never piles up); `stop()` ends it and returns
 * each distinct violation once, with when it was first seen.
 */
export function watchHypervisors(dir: string, everyMs: number): { stop(): Promise<{ samples: number; violations: SeenViolation[] }> } {
  const view = deploymentView(dir);
  const seen = new Map<string, string>();
  let samples = 0;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const tick = () => {
    try {
      for (const v of sampleInstant(view)) if (!seen.has(v)) seen.set(v, new Date().toISOString());
      samples++;
    } catch {
      // A read that raced a write (a busy database past its timeout): the next sample looks again.
    }
    if (!stopped) timer = setTimeout(tick, everyMs);
  };
  timer = setTimeout(tick, everyMs);
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      return { samples, violations: [...seen].map(([violation, time]) => ({ time, violation })) };
    },
  };
}
