import { setTimeout as delay } from 'node:timers/promises';
import { VbsApi } from '../cli/api.js';
import type { Snapshot, Volume } from '../cli/records.js';
import { connectWithClientConfig, type Caller } from '../cli/runtime.js';
import { VbsError } from '../core/errors.js';
import { VBS_SERVICE } from '../services/vbs.js';
import type { Prng } from './prng.js';
import type { RequestLog } from './request-log.js';

/** The simulated host and VMs `vbs up` makes. */
export const VMM_HOST = 'localhost';
export const VMS = ['vm1', 'vm2', 'vm3'] as const;
/** Guest device names the clients choose from (distinct per VM, as a user would). */
const DEVICES = ['xvdb', 'xvdc', 'xvdd', 'xvde', 'xvdf', 'xvdg', 'xvdh', 'xvdi'];
/** How long a client waits for what it started to finish, like `--wait` (bounded). */
const WAIT_MS = 30_000;

export type Operation = 'createVolume' | 'createFromSnapshot' | 'createSnapshot' | 'attach' | 'detach' | 'deleteVolume' | 'deleteSnapshot';

export interface WorkloadOptions {
  readonly clientConfig: string;
  readonly clients: number;
  readonly seed: number;
  /** Keeps the deployment small: no new volume or snapshot past these. */
  readonly maxVolumes: number;
  readonly maxSnapshots: number;
}

/** What the clients see: the records of the one user they share. */
interface View {
  volumes: Volume[];
  snapshots: Snapshot[];
}

/**
 * C clients, each a loop of random valid operations on what DescribeVolumes
 * and DescribeSnapshots show: create (blank, from a snapshot), snapshot,
 * attach read-write or read-only to vm1..vm3 on distinct devices, detach,
 * delete. They share one user (the admin), so they race each other on the
 * same volumes. Each retries as the CLI does (VbsApi: Describe* and creates
 * with a client token, while the front is unreachable); any fault is an
 * expected outcome, logged, and the client carries on.
 */
export class Workload {
  private stopping = false;
  private readonly loops: Promise<void>[] = [];
  private readonly callers: Caller[] = [];

  constructor(
    private readonly opts: WorkloadOptions,
    private readonly prng: Prng,
    private readonly log: RequestLog,
  ) {}

  start(): void {
    for (let i = 1; i <= this.opts.clients; i++) {
      const caller = connectWithClientConfig(VBS_SERVICE, this.opts.clientConfig);
      this.callers.push(caller);
      const api = new VbsApi(caller, { sleep: (ms) => delay(ms) });
      this.loops.push(this.clientLoop(i, api, this.prng.fork()));
    }
  }

  /** Asks every client to stop after its current request (and wait), and waits for them. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
    for (const c of this.callers) c.close?.();
  }

  private async clientLoop(client: number, api: VbsApi, prng: Prng): Promise<void> {
    let n = 0;
    while (!this.stopping) {
      const view = await this.look(api);
      if (!view) {
        await delay(250);
        continue;
      }
      const started = await this.act(client, api, prng, view, n++);
      if (started && !this.stopping && prng.chance(0.5)) await this.waitSettled(api, started);
      await delay(prng.int(0, 200));
    }
  }

  private async look(api: VbsApi): Promise<View | undefined> {
    try {
      const [volumes, snapshots] = await Promise.all([api.describeVolumes(), api.describeSnapshots()]);
      return { volumes, snapshots };
    } catch {
      return undefined; // the front is down for longer than the CLI retries: look again
    }
  }

  /** Chooses one operation that is valid on `view`, runs it and logs it; returns the id it started on. */
  private async act(client: number, api: VbsApi, prng: Prng, view: View, n: number): Promise<string | undefined> {
    const { volumes, snapshots } = view;
    const live = volumes.filter((v) => v.status !== 'deleting');
    const usable = volumes.filter((v) => v.status === 'available' || v.status === 'in-use');
    const completed = snapshots.filter((s) => s.status === 'completed');
    const attachable = volumes.filter((v) => v.status === 'available' || (v.status === 'in-use' && v.attachments.every((a) => a.mode === 'r')));
    const attached = volumes.flatMap((v) => v.attachments.filter((a) => a.status === 'attached'));
    const deletableVolumes = volumes.filter((v) => v.status === 'available' || v.status === 'error');
    const deletableSnapshots = snapshots.filter((s) => s.status === 'completed' || s.status === 'error');
    const crowded = live.length >= this.opts.maxVolumes;
    const op = prng.weighted<Operation>({
      createVolume: crowded ? 0 : 3,
      createFromSnapshot: crowded || !completed.length ? 0 : 2,
      createSnapshot: usable.length && snapshots.length < this.opts.maxSnapshots ? 2 : 0,
      attach: attachable.length ? 5 : 0,
      detach: attached.length ? 4 : 0,
      deleteVolume: deletableVolumes.length ? (live.length > this.opts.maxVolumes / 2 ? 3 : 1) : 0,
      deleteSnapshot: deletableSnapshots.length ? (snapshots.length > this.opts.maxSnapshots / 2 ? 2 : 1) : 0,
    });
    if (!op) return undefined;
    const token = `soak-${this.opts.seed}-${client}-${n}`;
    switch (op) {
      case 'createVolume': {
        const input = { size: 1, comment: `soak ${client}`, clientToken: token };
        return this.call(client, op, input, async () => (await api.createVolume(input)).volumeId);
      }
      case 'createFromSnapshot': {
        const snap = prng.pick(completed);
        const input = { size: snap.size + (prng.chance(0.3) ? 1 : 0), snapshotId: snap.snapshotId, comment: `soak ${client}`, clientToken: token };
        return this.call(client, op, input, async () => (await api.createVolume(input)).volumeId);
      }
      case 'createSnapshot': {
        const input = { volumeId: prng.pick(usable).volumeId, comment: `soak ${client}`, clientToken: token };
        return this.call(client, op, input, async () => (await api.createSnapshot(input)).snapshotId);
      }
      case 'attach': {
        const vol = prng.pick(attachable);
        const vmId = prng.pick(VMS);
        const used = new Set(volumes.flatMap((v) => v.attachments.filter((a) => a.vmId === vmId).map((a) => a.device.replace(/^\/dev\//, ''))));
        const free = DEVICES.filter((d) => !used.has(d));
        const device = free.length ? prng.pick(free) : prng.pick(DEVICES);
        const mode = vol.status === 'in-use' || prng.chance(0.4) ? 'r' : 'w';
        const input = { volumeId: vol.volumeId, vmmHost: VMM_HOST, vmId, device, mode };
        return this.call(client, op, input, async () => (await api.attachVolume(input)).volumeId);
      }
      case 'detach': {
        const a = prng.pick(attached);
        const input = { volumeId: a.volumeId, vmmHost: a.vmmHost, vmId: a.vmId };
        return this.call(client, op, input, async () => (await api.detachVolume(input)).volumeId);
      }
      case 'deleteVolume': {
        const volumeId = prng.pick(deletableVolumes).volumeId;
        return this.call(client, op, { volumeId }, async () => (await api.deleteVolume(volumeId), volumeId));
      }
      case 'deleteSnapshot': {
        const snapshotId = prng.pick(deletableSnapshots).snapshotId;
        return this.call(client, op, { snapshotId }, async () => (await api.deleteSnapshot(snapshotId), snapshotId));
      }
    }
  }

  /** Runs one request and logs its outcome; a fault is an outcome, not a failure of the soak. */
  private async call(client: number, op: Operation, input: Record<string, unknown>, run: () => Promise<string>): Promise<string | undefined> {
    const t0 = Date.now();
    const time = new Date(t0).toISOString();
    try {
      const resource = await run();
      this.log.add({ time, client, op, input, outcome: 'ok', resource, ms: Date.now() - t0 });
      return resource;
    } catch (err) {
      const code = err instanceof VbsError ? err.code : 'ClientError';
      this.log.add({ time, client, op, input, outcome: code, message: (err as Error).message, ms: Date.now() - t0 });
      return undefined;
    }
  }

  /** Like `--wait`: polls until the resource leaves its transient state, is gone, or WAIT_MS pass. */
  private async waitSettled(api: VbsApi, id: string): Promise<void> {
    const end = Date.now() + WAIT_MS;
    while (!this.stopping && Date.now() < end) {
      try {
        if (id.startsWith('snap-')) {
          const s = (await api.describeSnapshots([id]))[0];
          if (!s || !['pending', 'deleting'].includes(s.status)) return;
        } else {
          const v = (await api.describeVolumes([id]))[0];
          if (!v || (!['creating', 'deleting'].includes(v.status) && v.attachments.every((a) => a.status === 'attached'))) return;
        }
      } catch {
        return; // not found (deleted) or the front is away: stop waiting
      }
      await delay(250);
    }
  }
}
