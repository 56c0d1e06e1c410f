import { describe, expect, it } from 'vitest';
import { runProcessGroup } from '../../src/commands/process-group.js';

/**
 * A command's answer is its whole output. The child's exit can be seen
 * before its output is read (a busy delegate reads its pipes late); the
 * answer must still wait for the pipes to close. An empty listing taken for
 * the real one once made a detach a no-op and left a disk on a VM.
 */
describe('runProcessGroup', () => {
  it('answers with everything a command wrote before it exited, even when its exit is seen first', async () => {
    const line = 'x'.repeat(99) + '\n';
    // 50 KB: fits the pipe, so the child exits before the parent reads any of it.
    const script = `process.stdout.write(${JSON.stringify(line)}.repeat(500), () => process.exit(0))`;
    for (let round = 0; round < 20; round++) {
      // No time to drain after the exit: the answer still comes only once the pipes closed.
      const r = await runProcessGroup(process.execPath, ['-e', script], { timeoutMs: 30_000, drainMs: 0 });
      expect(r.exitCode).toBe(0);
      expect(r.stdout.length).toBe(50_000);
    }
  });

  it('fails a command whose output stays open after the group is killed, rather than answer with part of it', async () => {
    // The grandchild leaves the group (setsid-like: detached) and keeps stdout open.
    const script =
      "const { spawn } = require('node:child_process');" +
      "const c = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 5000)'], { detached: true, stdio: ['ignore', 'inherit', 'ignore'] });" +
      "process.stdout.write('partial\\n', () => { console.error(c.pid); process.exit(0); });";
    const r = await runProcessGroup(process.execPath, ['-e', script], { timeoutMs: 30_000, drainMs: 100, killGraceMs: 300 });
    const grandchild = Number(r.stderr.trim());
    try {
      expect(r.exitCode).toBeUndefined();
      expect(r.error).toMatch(/output did not close/);
    } finally {
      if (grandchild > 0) process.kill(-grandchild, 'SIGKILL');
    }
  });
});
