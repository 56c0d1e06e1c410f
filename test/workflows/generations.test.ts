import { beforeAll, describe, expect, it } from 'vitest';
import { VbsError } from '../../src/core/errors.js';
import { failureOutcome } from '../../src/core/outcome.js';
import { VMM_GENERATION_RULES, VOLUME_GENERATION_RULES } from '../../src/delegates/generation-rules.js';
import { GenerationMemory, generationOf, type GuardRules } from '../../src/delegates/generations.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { availableVolume, FakeDelegate, makeFront, useEngine } from './fakes.js';
import { ENGINES } from '../setup/engines.js';

/**
 * Issue 16 at the front: every workflow on a volume takes the next
 * generation, every delegate call it makes (and its undos, however late)
 * carries it, and an undo a delegate refuses as stale is dropped, not retried.
 * The fake hosts keep state and check generations with the delegates' own
 * memory (src/delegates/generations.ts).
 */
class GuardedFake extends FakeDelegate {
  readonly memory = new GenerationMemory(':memory:');
  constructor(private readonly rules: GuardRules) {
    super();
  }

  override async call(op: string, i: XmlRecord): Promise<XmlRecord> {
    const rule = this.rules[op];
    if (rule) {
      const { key, direction } = rule(i);
      this.memory.admit(key, direction, generationOf(i));
    }
    return super.call(op, i);
  }
}

const attachArgs = (volumeId: string) => ({ volumeId, vmmHost: 'localhost', vmId: 'vm1', device: 'xvdb' });
const ATTACH_STEPS = ['volume-delegate.ExportVolume', 'vmm-delegate.DiscoverTarget', 'vmm-delegate.LoginTarget', 'vmm-delegate.AttachDisk'];

describe.each(ENGINES)('on %s', (engine) => {
  beforeAll(() => useEngine(engine));

  describe('generations at the front', () => {
    it("an old attach's undos run from a stale copy after a newer attach of the same volume to the same VM are refused and dropped; the newer attachment keeps its disk, session and export", async () => {
      const f = makeFront(':memory:', new GuardedFake(VOLUME_GENERATION_RULES), new GuardedFake(VMM_GENERATION_RULES));
      f.storage.exportKind = 'iscsi';
      const vol = await availableVolume(f);
      await f.call('AttachVolume', attachArgs(vol));
      await f.call('DetachVolume', { volumeId: vol });
      await f.call('AttachVolume', attachArgs(vol));

      // Each workflow on the volume took the next generation, in its journaled data.
      const journal = f.db.prepare('SELECT id, kind, data FROM workflows WHERE resource_id = ? ORDER BY id').all(vol) as { id: number; kind: string; data: string }[];
      expect(journal.map((w) => [w.kind, (JSON.parse(w.data) as { generation?: number }).generation])).toEqual([
        ['CreateVolume', 1],
        ['AttachVolume', 2],
        ['DetachVolume', 3],
        ['AttachVolume', 4],
      ]);
      const held = { exports: [...f.storage.exports], sessions: [...f.vmm.sessions], disks: [...f.vmm.disks] };
      expect(held.disks).toEqual([['vm1/xvdb', vol]]);

      // The first attach's undos, from a stale copy of its data (as a runner
      // that lost its claim would have kept them), queued after the newer attach.
      const first = journal[1]!;
      // Written as SQL: the journal itself refuses a write from a runner that holds no claim.
      const keep = f.db.prepare(`INSERT INTO leftovers (workflow_id, kind, step, data, error, created_at, next_attempt_at, resource_id) VALUES (?, 'AttachVolume', ?, ?, 'from a stale copy', ?, ?, ?)`);
      for (const step of ATTACH_STEPS) keep.run(first.id, step, first.data, new Date().toISOString(), new Date(0).toISOString(), vol);
      await f.wf.engine.resume();

      expect(f.db.prepare('SELECT count(*) AS n FROM leftovers').get()).toEqual({ n: 0 });
      expect({ exports: [...f.storage.exports], sessions: [...f.vmm.sessions], disks: [...f.vmm.disks] }).toEqual(held);
      expect(f.meta.attachmentsOf([vol]).map((a) => a.status)).toEqual(['attached']);
      expect(f.meta.volume(vol)!.status).toBe('in-use');
    });

    it("the same workflow's undo passes: a failed attach still rolls back what it did", async () => {
      const f = makeFront(':memory:', new GuardedFake(VOLUME_GENERATION_RULES), new GuardedFake(VMM_GENERATION_RULES));
      f.storage.exportKind = 'iscsi';
      const vol = await availableVolume(f);
      await f.call('AttachVolume', attachArgs(vol));
      await f.call('DetachVolume', { volumeId: vol });
      f.vmm.failures.set('AttachDisk', new VbsError('OperationFailed', 'injected'));
      await expect(f.call('AttachVolume', attachArgs(vol))).rejects.toThrow(/AttachVolume failed at step 4 of 4/);
      expect({ exports: [...f.storage.exports], sessions: [...f.vmm.sessions], disks: [...f.vmm.disks] }).toEqual({ exports: [], sessions: [], disks: [] });
      expect(f.db.prepare('SELECT count(*) AS n FROM leftovers').get()).toEqual({ n: 0 });
    });

    it('a stale refusal reads as "refused: nothing changed"', () => {
      expect(failureOutcome(new VbsError('StaleGeneration', 'older than one already done'))).toBe('refused');
    });

    it("a detach whose unexport is refused as stale (another front's newer attach exported it again) finishes without it, leaving the export", async () => {
      const f = makeFront(':memory:', new GuardedFake(VOLUME_GENERATION_RULES), new GuardedFake(VMM_GENERATION_RULES));
      const vol = await availableVolume(f);
      await f.call('AttachVolume', attachArgs(vol));
      // A newer workflow, run elsewhere, exported the volume to this host for itself.
      (f.storage as GuardedFake).memory.admit(`export/${vol}/localhost`, 'add', 99);
      await f.call('DetachVolume', { volumeId: vol });
      expect(f.meta.attachmentsOf([vol])).toEqual([]);
      expect(f.meta.volume(vol)!.status).toBe('available');
      expect([...f.vmm.disks]).toEqual([]);
      expect([...f.storage.exports]).toEqual([`${vol}@localhost`]);
      expect(f.db.prepare(`SELECT count(*) AS n FROM workflows WHERE state = 'running'`).get()).toEqual({ n: 0 });
    });
  });
});

describe('a step delivered after its own undo', () => {
  it('is refused: a login that lands after its workflow logged out leaves no session behind', () => {
    const m = new GenerationMemory(':memory:');
    m.admit('session/vol-1', 'add', 7); // the attach's login, sent; its answer lost
    m.admit('session/vol-1', 'remove', 7); // its own undo (logout) passes
    expect(() => m.admit('session/vol-1', 'add', 7)).toThrow(expect.objectContaining({ code: 'StaleGeneration' })); // the stalled login lands late
    m.admit('session/vol-1', 'add', 8); // a newer attach sets it up
    m.admit('session/vol-1', 'remove', 8);
    // Fronts older than generations (0) keep the old rule: both directions pass.
    m.admit('session/vol-2', 'remove', 0);
    m.admit('session/vol-2', 'add', 0);
  });
});
