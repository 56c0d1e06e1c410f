import { describe, expect, it } from 'vitest';
import { CommandFailed, type CommandRunner } from '../../../src/commands/runner.js';
import { RbdTools } from '../../../src/delegates/volume/rbd-tools.js';

const LISTING = JSON.stringify([{ image: 'vol-a', id: '1', size: 1048576, format: 2 }]);

/** A runner whose answers are scripted per call: a CommandFailed result, or stdout. */
function scriptedRunner(answers: (string | { signal?: NodeJS.Signals; exitCode?: number; timedOut?: boolean })[]) {
  const calls: string[] = [];
  const runner = {
    catalog: { has: () => true },
    async run(key: string) {
      calls.push(key);
      const next = answers.shift();
      if (next === undefined) throw new Error(`no answer scripted for call ${calls.length} (${key})`);
      if (typeof next === 'string') return { stdout: next, stderr: '', exitCode: 0 };
      throw new CommandFailed(key, ['rbd'], { stderr: '*** Caught signal (Aborted) **', timedOut: false, ...next });
    },
  };
  return { tools: new RbdTools(runner as unknown as CommandRunner, 'vbs'), calls };
}

describe('RbdTools reads', () => {
  it('a listing whose rbd process crashed on its way out (SIGABRT, as Ceph 16 sometimes does) is read again', async () => {
    const { tools, calls } = scriptedRunner([{ signal: 'SIGABRT' }, { signal: 'SIGSEGV' }, LISTING]);
    expect([...(await tools.list()).images.keys()]).toEqual(['vol-a']);
    expect(calls).toEqual(['volume.rbd.list', 'volume.rbd.list', 'volume.rbd.list']);
  });

  it('every read is retried after a crash: info, status, children and the space', async () => {
    const crash = { signal: 'SIGABRT' as const };
    const { tools, calls } = scriptedRunner([
      crash, '{"id":"abc"}',
      crash, '{"watchers":[]}',
      crash, '[]',
      crash, JSON.stringify({ stats: { total_bytes: 10 }, pools: [{ name: 'vbs', stats: { stored: 1, max_avail: 5 } }] }),
    ]);
    expect(await tools.info('vol-a')).toEqual({ id: 'abc' });
    expect(await tools.watchers('vol-a')).toEqual([]);
    expect(await tools.children('vol-a', 'snap-a')).toEqual([]);
    expect(await tools.space()).toEqual({ clusterBytes: 10, storedBytes: 1, maxAvailBytes: 5 });
    expect(calls).toHaveLength(8);
  });

  it('the retries end: a read that keeps crashing fails after five attempts', async () => {
    const { tools, calls } = scriptedRunner(Array.from({ length: 9 }, () => ({ signal: 'SIGABRT' as const })));
    const err = await tools.list().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandFailed);
    expect(calls).toHaveLength(5);
  });

  it('a read that timed out or was refused is not tried again (its time limit holds; a refusal is an answer)', async () => {
    const timedOut = scriptedRunner([{ timedOut: true, signal: 'SIGKILL' }, LISTING]);
    expect(await timedOut.tools.list().catch((e: unknown) => e)).toBeInstanceOf(CommandFailed);
    expect(timedOut.calls).toHaveLength(1);
    const refused = scriptedRunner([{ exitCode: 13 }, '{"id":"abc"}']);
    expect(await refused.tools.info('vol-a').catch((e: unknown) => e)).toBeInstanceOf(CommandFailed);
    expect(refused.calls).toHaveLength(1);
  });
});
