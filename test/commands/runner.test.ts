import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CommandCatalog } from '../../src/commands/catalog.js';
import { CommandHelper } from '../../src/commands/helper-client.js';
import { CommandFailed, CommandRunner } from '../../src/commands/runner.js';
import { Semaphore } from '../../src/commands/semaphore.js';
import { eventually } from '../e2e/harness.js';

/**
 * The runner against real process trees: a node script that starts `sleep 30`
 * on our stdout (the grandchild that used to hold a command past its timeout),
 * then stays, ignores SIGTERM, or exits at once.
 */
const dir = mkdtempSync(join(tmpdir(), 'vbs-runner-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const FIXTURE = join(dir, 'holds-stdout.mjs');
writeFileSync(
  FIXTURE,
  `import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
const [pidFile, mode] = process.argv.slice(2);
const sleeper = spawn('sleep', ['30'], { stdio: ['ignore', 'inherit', 'inherit'] });
writeFileSync(pidFile, String(sleeper.pid));
process.stdout.write('started\\n');
if (mode === 'stubborn') process.on('SIGTERM', () => {});
if (mode === 'exit') sleeper.unref();
else setInterval(() => {}, 1000);
`,
);

const catalog = CommandCatalog.fromText(
  [
    `test.hold = <node> <source> <path> stay`,
    `test.hold.timeoutMs = 1000`,
    `test.stubborn = <node> <source> <path> stubborn`,
    `test.stubborn.timeoutMs = 1000`,
    `test.leave = <node> <source> <path> exit`,
    `test.leave.timeoutMs = 60000`,
    `test.echo = echo <vmId>`,
    `test.fail = <node> -e process.exit(3)`,
    `test.missing = /nonexistent/program <vmId>`,
    `test.killed = <node> -e process.kill(process.pid,9)`,
  ].join('\n'),
);

/** Gone: no such process, or a zombie nobody has reaped yet (it runs nothing and holds nothing). */
function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

async function failure(p: Promise<unknown>): Promise<CommandFailed> {
  try {
    await p;
  } catch (err) {
    if (err instanceof CommandFailed) return err;
    throw err;
  }
  throw new Error('expected the command to fail');
}

function grandchildOf(pidFile: string): number {
  expect(existsSync(pidFile)).toBe(true);
  return Number(readFileSync(pidFile, 'utf8'));
}

/** Every rule holds whether this process starts the commands or the command helper does (what the delegates use). */
const helper = new CommandHelper();
afterAll(() => helper.stop());
const STARTERS = [
  ['started by this process', undefined],
  ['started by the command helper', helper],
] as const;

describe.each(STARTERS)('command runner, %s', { timeout: 60_000 }, (_, helper) => {
  const runner = new CommandRunner(catalog, { fixed: { node: process.execPath, source: FIXTURE }, ...(helper ? { helper } : {}) });

  // The 20 s test limits are not measurements: before the fix these took the grandchild's 30 s.
  it('stops a command whose grandchild holds its output at the timeout, and kills the grandchild', { timeout: 20_000 }, async () => {
    const pidFile = join(dir, `hold${helper ? '-helper' : ''}.pid`);
    const err = await failure(runner.run('test.hold', { path: pidFile }));
    expect(err.result.timedOut).toBe(true);
    expect(err.code).toBe('OperationFailed');
    expect(err.message).toMatch(/test\.hold timed out/);
    const pid = grandchildOf(pidFile);
    await eventually(async () => (gone(pid) ? true : undefined), 10_000, 50);
  });

  it('kills a command that ignores SIGTERM with SIGKILL, still answering timed out', async () => {
    const pidFile = join(dir, `stubborn${helper ? '-helper' : ''}.pid`);
    const err = await failure(runner.run('test.stubborn', { path: pidFile }));
    expect(err.result.timedOut).toBe(true);
    await eventually(async () => (gone(grandchildOf(pidFile)) ? true : undefined), 10_000, 50);
  });

  it('answers a command that exited, leaving a grandchild on its output, without waiting for it', { timeout: 20_000 }, async () => {
    const pidFile = join(dir, `leave${helper ? '-helper' : ''}.pid`);
    // The limit is a minute: the answer comes from the exit, not from the timeout.
    const r = await runner.run('test.leave', { path: pidFile });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('started\n');
    await eventually(async () => (gone(grandchildOf(pidFile)) ? true : undefined), 10_000, 50);
  });

  it('returns output, and reports exit codes and programs that cannot start', async () => {
    expect((await runner.run('test.echo', { vmId: 'hello' })).stdout).toBe('hello\n');
    const exit = await failure(runner.run('test.fail', {}));
    expect(exit.result).toMatchObject({ exitCode: 3, timedOut: false });
    const missing = await failure(runner.run('test.missing', { vmId: 'x' }));
    expect(missing.result.exitCode).toBeUndefined();
    expect(missing.result.timedOut).toBe(false);
  });

  it('says which signal killed a command, in the failure and in its message', async () => {
    const killed = await failure(runner.run('test.killed', {}));
    expect(killed.result).toMatchObject({ exitCode: undefined, signal: 'SIGKILL', timedOut: false });
    expect(killed.message).toBe('test.killed was killed by SIGKILL');
    expect(killed.message).not.toContain('no code');
  });

  it('runs at most maxConcurrent commands at once', async () => {
    // Each command registers itself in a folder while it runs and logs how many it saw there.
    const active = join(dir, helper ? 'active-helper' : 'active');
    const overlap = CommandCatalog.fromText(`test.overlap = <node> <source> <path>`);
    writeFileSync(
      join(dir, 'overlap.mjs'),
      `import { appendFileSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
const dir = process.argv[2];
mkdirSync(dir, { recursive: true });
writeFileSync(dir + '/' + process.pid, '');
appendFileSync(dir + '.log', readdirSync(dir).length + '\\n');
setTimeout(() => rmSync(dir + '/' + process.pid), 300);
`,
    );
    const limited = new CommandRunner(overlap, { maxConcurrent: 2, fixed: { node: process.execPath, source: join(dir, 'overlap.mjs') }, ...(helper ? { helper } : {}) });
    await Promise.all(Array.from({ length: 6 }, () => limited.run('test.overlap', { path: active })));
    const counts = readFileSync(`${active}.log`, 'utf8').trim().split('\n').map(Number);
    expect(counts).toHaveLength(6);
    expect(Math.max(...counts)).toBeLessThanOrEqual(2);
  });

  it('a semaphore lets the next section in only when one leaves', async () => {
    const slots = new Semaphore(2);
    const started: number[] = [];
    const release: (() => void)[] = [];
    const section = (n: number) => () => new Promise<void>((r) => (started.push(n), release.push(r)));
    const all = Promise.all([1, 2, 3].map((n) => slots.run(section(n))));
    await eventually(async () => (started.length === 2 ? true : undefined), 5_000, 5);
    expect(started).toEqual([1, 2]);
    release.shift()!();
    await eventually(async () => (started.length === 3 ? true : undefined), 5_000, 5);
    expect(started).toEqual([1, 2, 3]);
    for (const r of release.splice(0)) r();
    await all;
  });
});
