import Database from 'better-sqlite3';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { expect } from 'vitest';
import { silentLogger } from '../../../src/core/log.js';
import { openDatabase } from '../../../src/db/database.js';
import { Metadata } from '../../../src/db/metadata.js';
import { DelegatePool } from '../../../src/front/delegates.js';
import { FrontWorkflows } from '../../../src/front/workflows.js';
import type { SoapClient } from '../../../src/soap/client.js';
import type { Record as XmlRecord } from '../../../src/soap/xml.js';
import { VMM_DELEGATE_SERVICE } from '../../../src/services/vmm-delegate.js';
import { VOLUME_DELEGATE_SERVICE } from '../../../src/services/volume-delegate.js';
import { eventually, ROOT } from '../harness.js';
import { findViolations, isQuiet } from '../invariants.js';
import { Cluster, type Role } from './cluster.js';

/**
 * The crash matrix: for every multi-step operation (a scenario: how to set it
 * up, ask for it, and what the user does next) and every step of its workflow
 * kind, as the front registers it, the front is killed before and after the
 * step, and the delegate the step calls is killed before and after that
 * operation's handler. The step lists are read from the workflow kinds, so a
 * new step is covered without editing this file.
 */

export const VMS = ['vm1', 'vm2', 'vm3'];
const HOST = 'localhost';
const SETTLE_MS = 45_000;

// --- the matrix, generated ----------------------------------------------------

/** The front's workflow kinds, built as the front builds them (no delegate is called). */
function frontKinds(): FrontWorkflows {
  const db = openDatabase(':memory:');
  return new FrontWorkflows(db, new Metadata(db), new DelegatePool(new Map(), new Map()), silentLogger);
}

function kindOf(kind: string) {
  const wf = frontKinds();
  const all = [wf.createVolume, wf.createSnapshot, wf.deleteVolume, wf.deleteSnapshot, wf.attach, wf.detach, wf.modifyVolume] as const;
  const k = all.find((x) => x.kind === kind);
  if (!k) throw new Error(`no workflow kind ${kind}`);
  return k;
}

/** Step names of a kind for the given workflow data, e.g. ['volume-delegate.ExportVolume', ...]. */
export function stepNames(kind: string, sample: object): string[] {
  return (kindOf(kind).steps as (d: object) => readonly { name: string }[])(sample).map((s) => s.name);
}

const DELEGATES: Record<string, { role: Role; service: string }> = {
  'volume-delegate': { role: 'volume-delegate', service: VOLUME_DELEGATE_SERVICE.name },
  'vmm-delegate': { role: 'vmm-delegate', service: VMM_DELEGATE_SERVICE.name },
};

export interface CrashTarget {
  readonly role: Role;
  readonly point: string;
  readonly label: string;
  /**
   * Whether recovery must leave the operation done (true) or undone (false),
   * for a front crash: done once every step is, or for a kind that rolls
   * forward; undone otherwise. Undefined for a delegate crash (the front's
   * retries may or may not reach the restarted delegate).
   */
  readonly takesEffect?: boolean;
  /**
   * The front killed once the workflow is committed (the last step's `after`):
   * the hosts are as at `<Kind>/commit`, and only the journal differs.
   */
  readonly committed?: boolean;
}

/** Every crash this scenario is put through. */
export function crashTargets(s: Scenario): CrashTarget[] {
  const steps = stepNames(s.kind, s.sample);
  const rollsForward = kindOf(s.kind).recovery === 'rollforward';
  const front = (point: string, what: string, allDone = false): CrashTarget => ({
    role: 'front',
    point,
    label: `front killed ${what}`,
    takesEffect: rollsForward || allDone,
  });
  // The workflow is journaled with its step 1 started, in one commit: `<Kind>/journaled` is the same
  // state as `<Kind>/1/before`, so only the latter is a case. The last step's "done" is written with
  // the commit: `<Kind>/commit` comes before that transaction (the step acted, nothing of it
  // journaled: undone, or run again by a kind that rolls forward) and the last `after` once it landed.
  const targets: CrashTarget[] = [];
  steps.forEach((name, i) => {
    targets.push(front(`${s.kind}/${i + 1}/before`, `before step ${i + 1} (${name})`));
    if (i === steps.length - 1) targets.push(front(`${s.kind}/commit`, `after step ${i + 1} (${name}) acted, before it is journaled with the commit`));
    if (i < steps.length - 1) targets.push(front(`${s.kind}/${i + 1}/after`, `after step ${i + 1} (${name})`));
    else targets.push({ ...front(`${s.kind}/${i + 1}/after`, `once step ${i + 1} (${name}) and the commit are journaled`, true), committed: true });
  });
  steps.forEach((name, i) => {
    const [who, op] = name.split('.') as [string, string];
    const d = DELEGATES[who];
    if (!d || !op) throw new Error(`step ${name} of ${s.kind} names no known delegate operation`);
    for (const when of ['before', 'after']) {
      targets.push({ role: d.role, point: `${d.service}.${op}/${when}`, label: `${d.role} killed ${when} ${op} (step ${i + 1})` });
    }
  });
  return targets;
}

// --- what a scenario can use ----------------------------------------------------

export class Tools {
  private client: SoapClient | undefined;
  private frontGeneration = -1;

  constructor(readonly cluster: Cluster) {}

  /** A client made after the front's last start (a killed front's connections are dead). */
  api(): SoapClient {
    if (!this.client || this.frontGeneration !== this.cluster.generation('front')) {
      this.client = this.cluster.soap();
      this.frontGeneration = this.cluster.generation('front');
    }
    return this.client;
  }

  async volume(id: string): Promise<XmlRecord | undefined> {
    const all = (await this.api().call('DescribeVolumes', {})).volume as XmlRecord[];
    return all.find((v) => v.volumeId === id);
  }

  async snapshot(id: string): Promise<XmlRecord | undefined> {
    const all = (await this.api().call('DescribeSnapshots', {})).snapshot as XmlRecord[];
    return all.find((s) => s.snapshotId === id);
  }

  async waitVolume(id: string, status: string): Promise<void> {
    await eventually(async () => ((await this.volume(id))?.status === status ? true : undefined), 30_000, 50).catch(async () => {
      throw new Error(`${id} did not become ${status}: ${JSON.stringify(await this.volume(id))}`);
    });
  }

  async waitSnapshot(id: string, status: string): Promise<void> {
    await eventually(async () => ((await this.snapshot(id))?.status === status ? true : undefined), 30_000, 50).catch(async () => {
      throw new Error(`${id} did not become ${status}: ${JSON.stringify(await this.snapshot(id))}`);
    });
  }

  async availableVolume(): Promise<string> {
    const id = String(((await this.api().call('CreateVolume', { size: 1 })).volume as XmlRecord).volumeId);
    await this.waitVolume(id, 'available');
    return id;
  }

  async completedSnapshot(volumeId: string): Promise<string> {
    const id = String(((await this.api().call('CreateSnapshot', { volumeId })).snapshot as XmlRecord).snapshotId);
    await this.waitSnapshot(id, 'completed');
    return id;
  }

  attach(volumeId: string, vmId: string, device: string, mode: 'r' | 'w'): Promise<XmlRecord> {
    return this.api().call('AttachVolume', { volumeId, vmmHost: HOST, vmId, device, mode });
  }

  detach(volumeId: string, vmId: string): Promise<XmlRecord> {
    return this.api().call('DetachVolume', { volumeId, vmmHost: HOST, vmId });
  }

  async attachmentsOf(volumeId: string): Promise<XmlRecord[]> {
    return ((await this.volume(volumeId))?.attachments as XmlRecord[] | undefined) ?? [];
  }

  /** Deletes volumes (detaching them first) and snapshots, whatever state the case left. */
  async remove(ids: readonly (string | undefined)[]): Promise<void> {
    for (const id of ids) {
      if (!id) continue;
      if (id.startsWith('snap-')) {
        if (await this.snapshot(id)) await this.api().call('DeleteSnapshot', { snapshotId: id });
        continue;
      }
      if (!(await this.volume(id))) continue;
      for (const a of await this.attachmentsOf(id)) await this.detach(id, String(a.vmId));
      await this.api().call('DeleteVolume', { volumeId: id });
    }
  }
}

// --- scenarios ----------------------------------------------------------------

type Ctx = Record<string, string | undefined>;

export interface Scenario {
  readonly title: string;
  /** The workflow kind the operation runs. */
  readonly kind: string;
  /** Workflow data like the operation's, to list the kind's steps. */
  readonly sample: object;
  /** Makes what the operation needs (no crash point is armed yet). */
  setup(t: Tools): Promise<Ctx>;
  /** The user's request under test. */
  act(t: Tools, ctx: Ctx): Promise<XmlRecord>;
  /** Whether the operation took effect (once recovery is over). */
  tookEffect(t: Tools, ctx: Ctx): Promise<boolean>;
  /** The user's next request, a retry or the follow-up: it must succeed. */
  next(t: Tools, ctx: Ctx): Promise<void>;
  /**
   * After a delegate crash, send the next request as soon as the delegate is
   * back, without waiting for undo retries to settle (as an impatient user
   * would): an undo still pending must not break it, nor it the undo.
   */
  readonly retryAtOnce?: boolean;
  /**
   * Delegate operations of the kind's steps that the front rightly does not
   * send for this scenario on an iSCSI back end (a session or export others on
   * the host still use). Every other step must reach its delegate there.
   */
  readonly notCalledOnIscsi?: readonly string[];
  /** What to delete afterwards. */
  created(ctx: Ctx): (string | undefined)[];
}

const VOL = 'vol-0123456789abcdef0';
const SNAP = 'snap-0123456789abcdef0';
const attachSample = (mode: 'r' | 'w') => ({ volumeId: VOL, vmmHost: HOST, vmId: 'vm1', device: 'xvdb', mode, delegate: 'local', source: { kind: 'file', path: `/v/${VOL}.img` } });

async function createWithToken(t: Tools, ctx: Ctx, input: XmlRecord): Promise<string> {
  const r = await t.api().call('CreateVolume', { ...input, clientToken: ctx.token });
  return String((r.volume as XmlRecord).volumeId);
}

export const CREATE_BLANK: Scenario = {
  title: 'CreateVolume (blank)',
  kind: 'CreateVolume',
  sample: { volumeId: VOL, sizeGiB: 1, snapshotId: null, delegate: 'local', owner: 'admin', clientToken: null },
  setup: async () => ({ token: randomUUID() }),
  act: (t, ctx) => t.api().call('CreateVolume', { size: 1, clientToken: ctx.token }),
  tookEffect: async (t) => (((await t.api().call('DescribeVolumes', {})).volume as XmlRecord[] | undefined) ?? []).length > 0,
  next: async (t, ctx) => {
    // The CLI's retry: the same client token returns the first volume, or makes it again if it was rolled back.
    ctx.made = await createWithToken(t, ctx, { size: 1 });
    await t.waitVolume(ctx.made, 'available');
  },
  created: (ctx) => [ctx.made],
};

export const CREATE_FROM_SNAPSHOT: Scenario = {
  title: 'CreateVolume (from a snapshot)',
  kind: 'CreateVolume',
  sample: { ...CREATE_BLANK.sample, snapshotId: SNAP },
  setup: async (t) => {
    const source = await t.availableVolume();
    return { token: randomUUID(), source, snap: await t.completedSnapshot(source) };
  },
  act: (t, ctx) => t.api().call('CreateVolume', { size: 2, snapshotId: ctx.snap, clientToken: ctx.token }),
  tookEffect: async (t, ctx) => (((await t.api().call('DescribeVolumes', {})).volume as XmlRecord[] | undefined) ?? []).some((v) => v.snapshotId === ctx.snap),
  next: async (t, ctx) => {
    ctx.made = await createWithToken(t, ctx, { size: 2, snapshotId: ctx.snap });
    await t.waitVolume(ctx.made, 'available');
  },
  created: (ctx) => [ctx.made, ctx.snap, ctx.source],
};

export const CREATE_SNAPSHOT: Scenario = {
  title: 'CreateSnapshot',
  kind: 'CreateSnapshot',
  sample: { snapshotId: SNAP, volumeId: VOL, delegate: 'local', owner: 'admin', clientToken: null },
  setup: async (t) => ({ token: randomUUID(), source: await t.availableVolume() }),
  act: (t, ctx) => t.api().call('CreateSnapshot', { volumeId: ctx.source, clientToken: ctx.token }),
  tookEffect: async (t) => (((await t.api().call('DescribeSnapshots', {})).snapshot as XmlRecord[] | undefined) ?? []).length > 0,
  next: async (t, ctx) => {
    const r = await t.api().call('CreateSnapshot', { volumeId: ctx.source, clientToken: ctx.token });
    ctx.made = String((r.snapshot as XmlRecord).snapshotId);
    await t.waitSnapshot(ctx.made, 'completed');
  },
  created: (ctx) => [ctx.made, ctx.source],
};

export const DELETE_VOLUME: Scenario = {
  title: 'DeleteVolume',
  kind: 'DeleteVolume',
  sample: { id: VOL, delegate: 'local', previous: 'available' },
  // Attached once before: the delete's first step then asks that VMM host whether a VM still holds it.
  setup: async (t) => {
    const vol = await t.availableVolume();
    await t.api().call('AttachVolume', { volumeId: vol, vmmHost: HOST, vmId: 'vm1', device: 'xvdb' });
    await t.api().call('DetachVolume', { volumeId: vol });
    return { vol };
  },
  act: (t, ctx) => t.api().call('DeleteVolume', { volumeId: ctx.vol }),
  tookEffect: async (t, ctx) => (await t.volume(ctx.vol!)) === undefined,
  next: async (t, ctx) => {
    // Deleted by recovery, or put back as it was: then deleting it again works.
    if (await t.volume(ctx.vol!)) await t.api().call('DeleteVolume', { volumeId: ctx.vol });
    expect(await t.volume(ctx.vol!)).toBeUndefined();
  },
  created: (ctx) => [ctx.vol],
};

export const DELETE_SNAPSHOT: Scenario = {
  title: 'DeleteSnapshot',
  kind: 'DeleteSnapshot',
  sample: { id: SNAP, delegate: 'local', previous: 'completed' },
  setup: async (t) => {
    const source = await t.availableVolume();
    return { source, snap: await t.completedSnapshot(source) };
  },
  act: (t, ctx) => t.api().call('DeleteSnapshot', { snapshotId: ctx.snap }),
  tookEffect: async (t, ctx) => (await t.snapshot(ctx.snap!)) === undefined,
  next: async (t, ctx) => {
    if (await t.snapshot(ctx.snap!)) await t.api().call('DeleteSnapshot', { snapshotId: ctx.snap });
    expect(await t.snapshot(ctx.snap!)).toBeUndefined();
  },
  created: (ctx) => [ctx.snap, ctx.source],
};

/**
 * A request sent right after a delegate crash may be told "retry shortly"
 * (ServiceUnavailable: the delegate is restarting, or VBS is still finishing
 * what the crash cut off): the user retries, a bounded number of times.
 */
async function patiently<T>(call: () => Promise<T>): Promise<T> {
  return eventually(
    () =>
      call().then(
        (v) => ({ v }),
        (err: unknown) => ((err as { code?: string }).code === 'ServiceUnavailable' ? undefined : Promise.reject(err)),
      ),
    30_000,
    250,
  ).then((r) => r.v);
}

/** Until no detach of that VM's attachment is still being finished (detach rolls forward). */
async function untilNotDetaching(t: Tools, vol: string, vmId: string): Promise<void> {
  await eventually(async () => ((await t.attachmentsOf(vol)).some((a) => a.vmId === vmId && a.status === 'detaching') ? undefined : true), 30_000, 250);
}

/** Attached (again, if the crash undid it) and then detached: both must work. */
async function ensureAttachedThenDetach(t: Tools, vol: string, vmId: string, device: string, mode: 'r' | 'w'): Promise<void> {
  // A rolled-back attach whose DetachDisk undo met the VMM delegate still
  // restarting keeps its attachment `detaching` until that undo works (the
  // VM may hold the disk): wait for it, as a user would, before attaching again.
  await untilNotDetaching(t, vol, vmId);
  if (!(await t.attachmentsOf(vol)).some((a) => a.vmId === vmId)) await patiently(() => t.attach(vol, vmId, device, mode));
  const a = (await t.attachmentsOf(vol)).find((x) => x.vmId === vmId);
  expect(a).toMatchObject({ status: 'attached', mode, device });
  await patiently(() => t.detach(vol, vmId));
}

export const ATTACH_W: Scenario = {
  retryAtOnce: true,
  title: 'AttachVolume (w)',
  kind: 'AttachVolume',
  sample: attachSample('w'),
  setup: async (t) => ({ vol: await t.availableVolume() }),
  act: (t, ctx) => t.attach(ctx.vol!, 'vm1', 'xvdb', 'w'),
  tookEffect: async (t, ctx) => (await t.attachmentsOf(ctx.vol!)).some((a) => a.vmId === 'vm1'),
  next: (t, ctx) => ensureAttachedThenDetach(t, ctx.vol!, 'vm1', 'xvdb', 'w'),
  created: (ctx) => [ctx.vol],
};

export const ATTACH_R: Scenario = {
  retryAtOnce: true,
  title: 'AttachVolume (r, beside another read-only attachment)',
  kind: 'AttachVolume',
  sample: attachSample('r'),
  setup: async (t) => {
    const vol = await t.availableVolume();
    await t.attach(vol, 'vm2', 'xvdc', 'r');
    return { vol };
  },
  act: (t, ctx) => t.attach(ctx.vol!, 'vm1', 'xvdb', 'r'),
  tookEffect: async (t, ctx) => (await t.attachmentsOf(ctx.vol!)).some((a) => a.vmId === 'vm1'),
  next: async (t, ctx) => {
    await ensureAttachedThenDetach(t, ctx.vol!, 'vm1', 'xvdb', 'r');
    expect((await t.attachmentsOf(ctx.vol!)).map((a) => [a.vmId, a.status])).toEqual([['vm2', 'attached']]);
  },
  created: (ctx) => [ctx.vol],
};

/** Detached (again, if the crash undid it), then attached anew to the same VM and device: both must work. */
async function ensureDetachedThenReattach(t: Tools, vol: string, vmId: string, device: string, mode: 'r' | 'w'): Promise<void> {
  await untilNotDetaching(t, vol, vmId);
  if ((await t.attachmentsOf(vol)).some((a) => a.vmId === vmId)) await patiently(() => t.detach(vol, vmId));
  expect((await t.attachmentsOf(vol)).some((a) => a.vmId === vmId)).toBe(false);
  await patiently(() => t.attach(vol, vmId, device, mode));
  await patiently(() => t.detach(vol, vmId));
}

export const DETACH_LAST: Scenario = {
  retryAtOnce: true,
  title: 'DetachVolume (the last attachment)',
  kind: 'DetachVolume',
  sample: attachSample('w'),
  setup: async (t) => {
    const vol = await t.availableVolume();
    await t.attach(vol, 'vm1', 'xvdb', 'w');
    return { vol };
  },
  act: (t, ctx) => t.api().call('DetachVolume', { volumeId: ctx.vol }),
  tookEffect: async (t, ctx) => !(await t.attachmentsOf(ctx.vol!)).some((a) => a.vmId === 'vm1'),
  next: async (t, ctx) => {
    await ensureDetachedThenReattach(t, ctx.vol!, 'vm1', 'xvdb', 'w');
    expect((await t.volume(ctx.vol!))?.status).toBe('available');
  },
  created: (ctx) => [ctx.vol],
};

export const DETACH_ONE_OF_SEVERAL: Scenario = {
  retryAtOnce: true,
  title: 'DetachVolume (one of several read-only attachments)',
  kind: 'DetachVolume',
  sample: attachSample('r'),
  // vm2 on the same host keeps using the session and the export.
  notCalledOnIscsi: ['LogoutTarget', 'UnexportVolume'],
  setup: async (t) => {
    const vol = await t.availableVolume();
    await t.attach(vol, 'vm1', 'xvdb', 'r');
    await t.attach(vol, 'vm2', 'xvdc', 'r');
    return { vol };
  },
  act: (t, ctx) => t.detach(ctx.vol!, 'vm1'),
  tookEffect: async (t, ctx) => !(await t.attachmentsOf(ctx.vol!)).some((a) => a.vmId === 'vm1'),
  next: async (t, ctx) => {
    await ensureDetachedThenReattach(t, ctx.vol!, 'vm1', 'xvdb', 'r');
    expect((await t.attachmentsOf(ctx.vol!)).map((a) => [a.vmId, a.status])).toEqual([['vm2', 'attached']]);
  },
  created: (ctx) => [ctx.vol],
};

// --- running one case -----------------------------------------------------------

/** No undo is waiting to be retried (cheap: one read of the journal). */
function noLeftovers(c: Cluster): boolean {
  const db = new Database(join(c.dir, 'vbs.db'), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM leftovers').get() as { n: number }).n === 0;
  } finally {
    db.close();
  }
}

/**
 * Waits (bounded) until the deployment is quiet and consistent; throws with
 * what is not. Quiet is polled cheaply first; the full check (which asks the
 * host simulator) runs once quiet. A look that fails (a tool or the database
 * busy for a moment) counts as "not yet", and is reported if nothing else is.
 */
export async function settled(c: Cluster, ms = SETTLE_MS): Promise<void> {
  const end = Date.now() + ms;
  let lastError: unknown;
  const look = (check: () => boolean): true | undefined => {
    try {
      return check() ? true : undefined;
    } catch (err) {
      lastError = err;
      return undefined;
    }
  };
  await eventually(async () => look(() => isQuiet(c.dir) && noLeftovers(c)), ms, 50).catch(() => {});
  await eventually(async () => look(() => findViolations(c.dir).length === 0), Math.max(1_000, end - Date.now()), 250).catch(() => {
    let bad: string[];
    try {
      bad = findViolations(c.dir);
    } catch (err) {
      bad = [`the invariants could not be read: ${(err as Error).message}`];
    }
    if (lastError) bad.push(`last failed look: ${(lastError as Error).message}`);
    throw new Error(`not consistent ${ms} ms after the restart:\n  - ${bad.join('\n  - ')}\nfront log:\n${c.tail('front')}`);
  });
}

/** The front's own consistency check (admin only) must find nothing. */
export async function expectConsistent(t: Tools): Promise<void> {
  const r = await t.api().call('CheckConsistency', {});
  expect(r.finding ?? [], 'CheckConsistency findings').toEqual([]);
  expect(r.clean).toBe(true);
}

type Outcome = { ok: true; value: XmlRecord } | { ok: false; error: unknown };

/**
 * One case: set up, arm the crash point in the target service, run the
 * request, restart the service the crash took down, then check that recovery
 * left nothing transient or orphaned and the user's next request succeeds.
 */
export async function runCrashCase(t: Tools, s: Scenario, target: CrashTarget): Promise<{ crashed: boolean; outcome: Outcome }> {
  const c = t.cluster;
  const ctx = await s.setup(t);
  try {
    await c.restart(target.role, { crashAt: target.point });
    const settledAct: Promise<Outcome> = s.act(t, ctx).then(
      (value) => ({ ok: true, value }),
      (error: unknown) => ({ ok: false, error }),
    );
    const exit = c.waitExit(target.role);
    let crashed = await Promise.race([exit.then((sig) => sig === 'SIGKILL'), settledAct.then(() => false)]);
    // The answer may come back a moment before the exit is seen.
    if (!crashed) crashed = (await c.waitExit(target.role, 500)) === 'SIGKILL';
    if (crashed) {
      await c.start(target.role);
    } else {
      expect(c.isRunning(target.role), `${target.role} ended without reaching ${target.point}; see ${c.logOf(target.role)}`).toBe(true);
      // The step made no call to this delegate (a file volume needs no iSCSI login; a shared session is kept): nothing to interrupt.
      await c.restart(target.role);
    }
    const outcome = await settledAct;
    if (!crashed) expect(outcome, `${target.point} was never reached, so ${s.title} should have succeeded: ${JSON.stringify(outcome)}`).toMatchObject({ ok: true });
    const atOnce = Boolean(s.retryAtOnce) && target.role !== 'front';
    if (atOnce) await s.next(t, ctx);
    await settled(c);
    await expectConsistent(t);
    if (target.takesEffect !== undefined) {
      expect(await s.tookEffect(t, ctx), `after recovery, ${s.title} should be ${target.takesEffect ? 'done' : 'undone'}`).toBe(target.takesEffect);
    }
    if (!atOnce) await s.next(t, ctx);
    return { crashed, outcome };
  } finally {
    await t.remove(s.created(ctx)).catch(() => {});
  }
}

/** After a case and its clean-up: nothing of it remains, and the deployment is consistent. */
export async function expectBaseline(t: Tools): Promise<void> {
  await settled(t.cluster);
  expect((await t.api().call('DescribeVolumes', {})).volume ?? []).toEqual([]);
  expect((await t.api().call('DescribeSnapshots', {})).snapshot ?? []).toEqual([]);
}

// --- background copies -----------------------------------------------------------

/**
 * An operator's commands file whose copies are slow real copies (dd, each
 * block synced), so a copy is visibly in progress when the delegate is killed.
 */
export function slowCopyCommands(dir: string): string {
  const shipped = readFileSync(join(ROOT, 'commands.properties'), 'utf8');
  const slow = 'dd if=<source> of=<path> bs=1M oflag=dsync status=none';
  const out = shipped.replace(/^volume\.file\.(snapshot|clone) = .*$/gm, (_, k: string) => `volume.file.${k} = ${slow}`);
  if ((out.match(/oflag=dsync/g) ?? []).length !== 2) throw new Error('commands.properties has no volume.file.snapshot / volume.file.clone pattern to slow down');
  const file = join(dir, 'slow-copies.properties');
  writeFileSync(file, out);
  return file;
}

/** True once a partial copy of `id` with some data is on the volume delegate's disk. */
export function copyInProgress(c: Cluster, id: string): boolean {
  const part = join(c.dir, 'volumes', `.${id}.img.part`);
  try {
    return existsSync(part) && statSync(part).size > 0;
  } catch {
    return false;
  }
}

/**
 * ModifyVolume of an attached volume (both steps act: the back end grows,
 * the VM's host is told). It rolls forward: a front crash anywhere leaves the
 * volume grown once recovery is over; the next request grows it again.
 */
export const MODIFY_ATTACHED: Scenario = {
  title: 'ModifyVolume (an attached volume grows)',
  kind: 'ModifyVolume',
  sample: { volumeId: VOL, modification: 1, delegate: 'local', originalSize: 1, targetSize: 2 },
  setup: async (t) => {
    const vol = await t.availableVolume();
    await t.attach(vol, 'vm1', 'xvdb', 'w');
    return { vol };
  },
  act: (t, ctx) => t.api().call('ModifyVolume', { volumeId: ctx.vol, size: 2 }),
  tookEffect: async (t, ctx) => (await t.volume(ctx.vol!))?.size === 2,
  next: async (t, ctx) => {
    const m = (await t.api().call('ModifyVolume', { volumeId: ctx.vol, size: 3 })).modification as XmlRecord;
    expect(m).toMatchObject({ modificationState: 'completed', targetSize: 3 });
    expect(await t.volume(ctx.vol!)).toMatchObject({ size: 3, status: 'in-use' });
  },
  created: (ctx) => [ctx.vol],
};
