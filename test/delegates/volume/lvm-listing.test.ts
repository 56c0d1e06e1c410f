import { describe, expect, it } from 'vitest';
import type { CommandRunner } from '../../../src/commands/runner.js';
import { LvmTools } from '../../../src/delegates/volume/lvm-tools.js';

/** A runner whose `lvs` answers only when the test says, listing whatever LVs exist at that moment. */
function gatedLvs() {
  const lvs: string[] = [];
  const pending: (() => void)[] = [];
  let started = 0;
  const runner = {
    run: async (key: string) => {
      expect(key).toBe('volume.lvm.list');
      started++;
      await new Promise<void>((r) => pending.push(r));
      // What lvs prints is the VG as it is when it reads it: after it started.
      return { stdout: lvs.map((name) => `${name},1073741824,,-wi-a-----`).join('\n'), stderr: '' };
    },
  } as unknown as CommandRunner;
  return { runner, lvs, answerOne: () => pending.shift()!(), started: () => started, waiting: () => pending.length };
}

const ticks = async (n = 20) => {
  for (let k = 0; k < n; k++) await new Promise((r) => setImmediate(r));
};

describe('listing LVs', () => {
  it('shares one lvs among the callers that ask while one runs, and never answers with a listing older than the question', async () => {
    const g = gatedLvs();
    const lvm = new LvmTools(g.runner, 'vbs', 'sim');
    const first = lvm.list();
    await ticks();
    // Three ask while the first runs; an LV is made meanwhile, which the first listing may not show.
    g.lvs.push('vol-new');
    const later = [lvm.list(), lvm.list(), lvm.list()];
    await ticks();
    expect(g.started()).toBe(1);
    g.answerOne();
    await first;
    await ticks();
    expect(g.started()).toBe(2); // one more for all three, started after they asked
    g.answerOne();
    for (const l of await Promise.all(later)) expect(l.map((x) => x.name)).toEqual(['vol-new']);
    expect(g.started()).toBe(2);
  });

  it('starts afresh after a listing that failed', async () => {
    let calls = 0;
    const runner = {
      run: async () => {
        calls++;
        if (calls === 1) throw new Error('lvs was killed');
        return { stdout: 'vol-a,1073741824,,-wi-a-----', stderr: '' };
      },
    } as unknown as CommandRunner;
    const lvm = new LvmTools(runner, 'vbs', 'sim');
    const [a, b] = [lvm.list(), lvm.list()];
    await expect(a).rejects.toThrow('killed');
    expect((await b).map((x) => x.name)).toEqual(['vol-a']);
  });
});
