import { beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/log.js';
import type { Db } from '../../src/db/database.js';
import { openDatabase } from '../../src/db/database.js';
import { Metadata } from '../../src/db/metadata.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { WorkflowEngine, type WorkflowKind } from '../../src/workflows/engine.js';
import { FakeDelegate, freshDb, makeFront, useEngine } from './fakes.js';
import { ENGINES } from '../setup/engines.js';

/**
 * Issue 21: every commit of the journal is an fsync the front's event loop
 * waits for, so the engine folds adjacent writes with nothing external
 * between them: the workflow's journal entry with "step 1 started", and the
 * last step's "done" with the commit. A crash just before a merged commit is
 * a crash a moment earlier: these tests show that no state appears that a
 * crash could not leave before.
 */

/** Counts the write transactions (BEGIN IMMEDIATE ... COMMIT) opened on `db` while `body` runs. */
async function writeTransactions(db: Db, body: () => Promise<unknown>): Promise<number> {
  const original = db.transaction.bind(db);
  let count = 0;
  let depth = 0;
  (db as { transaction: Db['transaction'] }).transaction = ((fn: (...args: unknown[]) => unknown) => {
    const tx = original(fn as never) as unknown as ((...args: unknown[]) => unknown) & Record<string, (...args: unknown[]) => unknown>;
    const counted = (...args: unknown[]) => {
      if (depth === 0) {
        count++;
        if (process.env.DEBUG_TX) console.log(new Error().stack);
      }
      depth++;
      try {
        return tx.immediate!(...args);
      } finally {
        depth--;
      }
    };
    // Only write transactions count: a read (deferred, or the plain call) is no commit to wait for.
    return Object.assign((...args: unknown[]) => tx(...args), { deferred: tx.deferred, exclusive: tx.exclusive, default: tx.default, immediate: counted });
  }) as unknown as Db['transaction'];
  try {
    await body();
  } finally {
    (db as { transaction: Db['transaction'] }).transaction = original;
  }
  return count;
}

/** A volume delegate that answers a create made within its call, as the real one does for a blank volume. */
class ReadyDelegate extends FakeDelegate {
  override async call(op: string, i: XmlRecord): Promise<XmlRecord> {
    const r = await super.call(op, i);
    return op === 'CreateVolume' ? { ...r, state: 'ready' } : r;
  }
}

interface Probe {
  id: string;
  ran: string[];
  undone: string[];
}

/** A two-step kind whose commit fails while `commitFails` is set, as a crash in the middle of that transaction would cut it. */
function probeKind(ran: string[], undone: string[], seen: (step: number) => void, commitFails: { on: boolean }): WorkflowKind<Probe> {
  const step = (n: number) => ({
    name: `volume-delegate.Step${n}`,
    run: async () => {
      seen(n);
      ran.push(`step${n}`);
    },
    undo: async () => {
      undone.push(`step${n}`);
    },
  });
  return {
    kind: 'Probe',
    recovery: 'rollback',
    resourceOf: (d) => d.id,
    steps: () => [step(1), step(2)],
    commit: () => {
      if (commitFails.on) throw new Error('the commit transaction was cut off');
    },
    abort: () => {},
  };
}

function journalOf(db: Db, kind: string): { state: string; steps: string } {
  const w = db.prepare('SELECT id, state FROM workflows WHERE kind = ? ORDER BY id DESC LIMIT 1').get(kind) as { id: number; state: string };
  const steps = db.prepare('SELECT idx, state FROM workflow_steps WHERE workflow_id = ? ORDER BY idx').all(w.id) as { idx: number; state: string }[];
  return { state: w.state, steps: steps.map((s) => `${s.idx + 1}:${s.state}`).join(' ') };
}

describe.each(ENGINES)('on %s', (engine) => {
  beforeAll(() => useEngine(engine));

  it('a blank create is two write transactions: journaled with its step started, then its step done with the commit', async () => {
    const f = makeFront(':memory:', new ReadyDelegate());
    let vol: XmlRecord | undefined;
    const n = await writeTransactions(f.db, async () => {
      vol = (await f.call('CreateVolume', { size: 1 })).volume as XmlRecord;
    });
    expect(vol?.status).toBe('available');
    expect(n).toBe(2);
    expect(journalOf(f.db, 'CreateVolume')).toEqual({ state: 'done', steps: '1:done' });
  });

  it('a delete (two steps) is four, not six: journaled with step 1 started; step 1 done; step 2 started; step 2 done with the commit', async () => {
    const f = makeFront(':memory:', new ReadyDelegate());
    const id = String(((await f.call('CreateVolume', { size: 1 })).volume as XmlRecord).volumeId);
    const n = await writeTransactions(f.db, () => f.call('DeleteVolume', { volumeId: id }));
    expect(n).toBe(4);
    expect(f.meta.volume(id)).toBeUndefined();
    expect(journalOf(f.db, 'DeleteVolume')).toEqual({ state: 'done', steps: '1:done 2:done' });
  });

  it('what the journal holds while each step runs, and after a commit cut off: the last step started, never done without its commit', async () => {
    const db = openDatabase(freshDb());
    const meta = new Metadata(db);
    const ran: string[] = [];
    const undone: string[] = [];
    const during: string[] = [];
    const commitFails = { on: true };
    const engine = new WorkflowEngine(db, meta, silentLogger);
    const kind = probeKind(ran, undone, () => during.push(journalOf(db, 'Probe').steps), commitFails);
    engine.register(kind);
    try {
      await expect(engine.run(kind, () => ({ id: 'vol-probe', ran: [], undone: [] }))).rejects.toThrow('the commit transaction was cut off');
      // Step 1 was journaled started with the workflow; step 2's "done" never landed without the commit.
      expect(during).toEqual(['1:started', '1:done 2:started']);
      expect(ran).toEqual(['step1', 'step2']);
      expect(journalOf(db, 'Probe')).toEqual({ state: 'running', steps: '1:done 2:started' });

      // The runner is gone (a crash): recovery finds the last step started, not done, and rolls the workflow back.
      engine.stop();
      commitFails.on = false;
      const after = new WorkflowEngine(db, meta, silentLogger);
      after.register(kind);
      expect(await after.recover()).toBe(1);
      expect(undone).toEqual(['step2', 'step1']);
      expect(journalOf(db, 'Probe').state).toBe('failed');
      after.stop();
    } finally {
      db.close();
    }
  });
});
