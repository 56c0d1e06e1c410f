import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/database.js';
import { Journal } from '../../src/db/journal.js';
import { judgeInstant, readInstantDisks, readInstantMetadata, sampleInstant, type InstantDisk, type InstantMetadata } from '../../src/soak/observer.js';
import { sim } from '../sim/helpers.js';

/**
 * The during-load observer's rules on made-up samples (metadata M1, the
 * hosts' disks H, metadata M2, read in that order): what it must report, and
 * the legitimate transitions between two reads it must not.
 */
const VOL = 'vol-0000000000000000a';

/** `workflows`: [id, resource, journal mark]. */
function meta(o: { volumes?: [string, string][]; attachments?: [string, string][]; max?: number; workflows?: [number, string, string][] } = {}): InstantMetadata {
  return {
    volumes: new Map(o.volumes ?? []),
    attachments: new Set((o.attachments ?? []).map(([id, vm]) => `${id} localhost ${vm}`)),
    maxWorkflowId: o.max ?? 10,
    workflows: new Map((o.workflows ?? []).map(([id, resource, mark]) => [id, { resource, mark }])),
  };
}

const disk = (vm: string, mode = 'w', volumeId = VOL): InstantDisk => ({ host: 'localhost', vm, dev: 'xvdb', volumeId, mode });

describe('the during-load observer', () => {
  it('reports a volume read-write on two VMs at once', () => {
    const m = meta({ volumes: [[VOL, 'in-use']], attachments: [[VOL, 'vm1'], [VOL, 'vm2']] });
    expect(judgeInstant(m, [disk('vm1'), disk('vm2')], m)).toEqual([`${VOL} is read-write on vm1@localhost and vm2@localhost at once`]);
  });

  it('allows one writer, or readers on many VMs', () => {
    const m = meta({ volumes: [[VOL, 'in-use']], attachments: [[VOL, 'vm1'], [VOL, 'vm2'], [VOL, 'vm3']] });
    expect(judgeInstant(m, [disk('vm1', 'r'), disk('vm2', 'r'), disk('vm3', 'r')], m)).toEqual([]);
    expect(judgeInstant(m, [disk('vm1')], m)).toEqual([]);
  });

  it('reports a disk on a VM while its volume is available with no attachment', () => {
    const m = meta({ volumes: [[VOL, 'available']] });
    expect(judgeInstant(m, [disk('vm3')], m)).toEqual([`${VOL} is on vm3/xvdb at localhost (mode w) while its record is available with no attachment there`]);
  });

  it('reports a disk on a VM while its volume is deleted, and one attached elsewhere', () => {
    expect(judgeInstant(meta(), [disk('vm2', 'r')], meta())).toEqual([`${VOL} is on vm2/xvdb at localhost (mode r) while its record is deleted with no attachment there`]);
    const m = meta({ volumes: [[VOL, 'in-use']], attachments: [[VOL, 'vm1']] });
    expect(judgeInstant(m, [disk('vm1'), disk('vm2')], m)).toContain(`${VOL} is on vm2/xvdb at localhost (mode w) while its record is in-use with no attachment there`);
  });

  it('does not report an attach that began between the two reads (its row is in M2 only)', () => {
    const m1 = meta({ volumes: [[VOL, 'available']] });
    const m2 = meta({ volumes: [[VOL, 'in-use']], attachments: [[VOL, 'vm1']], workflows: [[11, VOL, 'running']], max: 11 });
    expect(judgeInstant(m1, [disk('vm1')], m2)).toEqual([]);
  });

  it('does not report a detach that ended between the two reads (its row is in M1 only)', () => {
    const m1 = meta({ volumes: [[VOL, 'in-use']], attachments: [[VOL, 'vm1']] });
    const m2 = meta({ volumes: [[VOL, 'available']] });
    expect(judgeInstant(m1, [disk('vm1')], m2)).toEqual([]);
  });

  it('does not report a whole attach and rollback between the reads, when a workflow on the volume began or moved', () => {
    const m = meta({ volumes: [[VOL, 'available']] });
    // An attach that began after M1 and rolled back before M2.
    expect(judgeInstant(m, [disk('vm1')], meta({ volumes: [[VOL, 'available']], workflows: [[11, VOL, 'failed']], max: 11 }))).toEqual([]);
    // One that was running at M1 and wrote its journal in between (attached, then undid it).
    const before = meta({ volumes: [[VOL, 'available']], workflows: [[10, VOL, 'running 1:started']] });
    expect(judgeInstant(before, [disk('vm1')], meta({ volumes: [[VOL, 'available']], workflows: [[10, VOL, 'running 1:undone']] }))).toEqual([]);
    expect(judgeInstant(before, [disk('vm1')], meta({ volumes: [[VOL, 'available']], workflows: [[10, VOL, 'failed 1:undone']] }))).toEqual([]);
  });

  it('reports a disk while a workflow on its volume runs on without moving, or one on another volume moves', () => {
    const m = meta({ volumes: [[VOL, 'available']], workflows: [[10, VOL, 'running 1:started']] });
    expect(judgeInstant(m, [disk('vm1')], m)).toHaveLength(1);
    const other = meta({ volumes: [[VOL, 'available']], workflows: [[11, 'vol-0000000000000000b', 'running']], max: 11 });
    expect(judgeInstant(meta({ volumes: [[VOL, 'available']] }), [disk('vm1')], other)).toHaveLength(1);
  });
});

describe('the during-load observer\'s reads', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vbs-soak-observer-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a real metadata file and a real simulated host, and sees a disk left behind', () => {
    const database = join(dir, 'vbs.db');
    const db = openDatabase(database);
    const simState = join(dir, 'vmm-sim');
    const file = join(dir, 'volumes', `${VOL}.img`);
    mkdirSync(join(dir, 'volumes'));
    writeFileSync(file, '');
    expect(sim(simState, ['vm', 'create', 'vm1']).code).toBe(0);
    expect(sim(simState, ['xm', 'block-attach', 'vm1', `file:${file}`, 'xvdb', 'w']).code).toBe(0);
    const now = new Date().toISOString();
    db.prepare(`INSERT INTO ids (id, kind, created_at) VALUES (?, 'vol', ?)`).run(VOL, now);
    db.prepare(`INSERT INTO volumes (volume_id, owner, size_gib, status, delegate, create_time) VALUES (?, 'admin', 1, 'available', 'local', ?)`).run(VOL, now);
    const view = { dir, database, volumeDelegates: [], vmmHosts: [{ name: 'localhost', simState }] };

    expect(readInstantDisks(view)).toEqual([{ host: 'localhost', vm: 'vm1', dev: 'xvdb', volumeId: VOL, mode: 'w' }]);
    expect(sampleInstant(view)).toEqual([`${VOL} is on vm1/xvdb at localhost (mode w) while its record is available with no attachment there`]);

    // A workflow on the volume that begins after the first read, or moves its journal, is seen by the second.
    const journal = new Journal(db, 'test', 60_000);
    const m1 = readInstantMetadata(database);
    const claim = journal.insert('AttachVolume', VOL, {});
    const id = claim.id;
    let m2 = readInstantMetadata(database, m1);
    expect(m2.workflows.get(id)?.resource).toBe(VOL);
    expect(judgeInstant(m1, readInstantDisks(view), m2)).toEqual([]);
    const m3 = readInstantMetadata(database);
    expect(m3.workflows.has(id)).toBe(true);
    expect(judgeInstant(m3, readInstantDisks(view), readInstantMetadata(database, m3))).toHaveLength(1);
    journal.setStep(claim, 0, 'vmm-delegate.AttachDisk', 'started');
    m2 = readInstantMetadata(database, m3);
    expect(judgeInstant(m3, readInstantDisks(view), m2)).toEqual([]);
    db.close();
  });
});
