import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CommandCatalog } from '../../src/commands/catalog.js';
import { CommandHelper, helperEntry } from '../../src/commands/helper-client.js';
import { CommandFailed, CommandRunner } from '../../src/commands/runner.js';
import { safeCommandFailures } from '../../src/delegates/listen.js';
import { silentLogger } from '../../src/core/log.js';
import type { CallContext } from '../../src/soap/server.js';
import { eventually } from '../e2e/harness.js';

/**
 * The command helper (src/commands/helper-client.ts): the delegates' host
 * commands start in a small process beside them. The rules of the runner
 * (no shell, a process group per command, the timeout kills the group,
 * bounded concurrency) are run through it in runner.test.ts; here, what is
 * the helper's own: secrets reach a command only on standard input or in
 * its environment, a helper that dies or hangs leaves its commands with an
 * unknown outcome (never a success) and is started again, and a delegate
 * that dies takes its helper and its commands with it.
 */
const dir = mkdtempSync(join(tmpdir(), 'vbs-helper-'));
const helpers: CommandHelper[] = [];
afterAll(() => {
  for (const h of helpers) h.stop();
  rmSync(dir, { recursive: true, force: true });
});

function newHelper(hungMarginMs?: number): CommandHelper {
  const h = new CommandHelper(helperEntry(), hungMarginMs);
  helpers.push(h);
  return h;
}

/** Writes its pid (and its process group's) to a file, prints what reached it, then waits `ms` before exiting. */
const TOOL = join(dir, 'tool.mjs');
writeFileSync(
  TOOL,
  `import { writeFileSync } from 'node:fs';
const [pidFile, ms] = process.argv.slice(2);
let input = '';
process.stdin.on('data', (d) => (input += d));
const go = () => {
  writeFileSync(pidFile, String(process.pid));
  process.stdout.write(JSON.stringify({ argv: process.argv.slice(2), input, env: process.env.TOOL_PASSWORD ?? null, extra: process.env.VBS_HELPER_TEST ?? null }));
  setTimeout(() => process.exit(0), Number(ms));
};
if (process.stdin.readable) process.stdin.on('end', go); else go();
`,
);

const SECRET = 'Vr8qLm2Zx0pTn5Wc7Ha3Ke';
const OTHER = 'Yt7pQw3Rz9Lm2Kx5Vb8Nc1';

const catalog = CommandCatalog.fromText(
  [
    't.stdin = <node> <source> <path> 0',
    't.stdin.stdin = <chapSecret>',
    't.env = <node> <source> <path> 0',
    't.env.env.TOOL_PASSWORD = <chapSecret>',
    't.long = <node> <source> <path> 60000',
    't.long.timeoutMs = 120000',
  ].join('\n'),
);

function runnerWith(helper: CommandHelper, seen: string[][] = []): CommandRunner {
  return new CommandRunner(catalog, { fixed: { node: process.execPath, source: TOOL }, helper, onRun: (_k, argv) => seen.push([...argv]) });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

async function pidIn(file: string): Promise<number> {
  return eventually(async () => (existsSync(file) && readFileSync(file, 'utf8') ? Number(readFileSync(file, 'utf8')) : undefined), 60_000, 20);
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

function cmdline(pid: number): string {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
}

describe('the command helper', { timeout: 120_000 }, () => {
  it('hands a secret to the command on standard input or in its environment, never in an argv (the command’s or the helper’s)', async () => {
    const helper = newHelper();
    const seen: string[][] = [];
    const runner = runnerWith(helper, seen);
    const viaStdin = JSON.parse((await runner.run('t.stdin', { path: join(dir, 'a.pid'), chapSecret: SECRET })).stdout) as { input: string; argv: string[] };
    expect(viaStdin.input).toBe(`${SECRET}\n`);
    const viaEnv = JSON.parse((await runner.run('t.env', { path: join(dir, 'b.pid'), chapSecret: SECRET })).stdout) as { env: string; input: string };
    expect(viaEnv.env).toBe(SECRET);
    expect(viaEnv.input).toBe('');
    expect(seen.flat().join(' ')).not.toContain(SECRET);
    expect(cmdline(helper.pid!)).not.toContain(SECRET);
    expect(cmdline(helper.pid!)).toContain('command-helper.js');
  });

  it('a command gets this process’s environment as it is now, not as it was when the helper started', async () => {
    const helper = newHelper();
    const runner = runnerWith(helper);
    await runner.run('t.stdin', { path: join(dir, 'c.pid'), chapSecret: SECRET });
    process.env.VBS_HELPER_TEST = 'set-later';
    try {
      const r = JSON.parse((await runner.run('t.stdin', { path: join(dir, 'd.pid'), chapSecret: SECRET })).stdout) as { extra: string };
      expect(r.extra).toBe('set-later');
    } finally {
      delete process.env.VBS_HELPER_TEST;
    }
  });

  it('the helper killed while a command runs: the command failed with an unknown outcome, its group is stopped, the next command gets a new helper', async () => {
    const helper = newHelper();
    const runner = runnerWith(helper);
    await runner.run('t.stdin', { path: join(dir, 'e.pid'), chapSecret: SECRET });
    const first = helper.pid!;
    const pidFile = join(dir, 'long.pid');
    const running = failure(runner.run('t.long', { path: pidFile }));
    const command = await pidIn(pidFile);
    process.kill(first, 'SIGKILL');
    const err = await running;
    expect(err.result).toMatchObject({ lost: true, timedOut: false, exitCode: undefined });
    expect(err.outcomeUnknown).toBe(true);
    expect(err.message).toBe('t.long was cut off: the command helper ended while it ran (its outcome is unknown)');
    await eventually(async () => (alive(command) ? undefined : true), 30_000, 20);
    // Through a delegate's handlers: an unknown outcome (ServiceUnavailable), never a refusal the front would read as "nothing changed".
    const handlers = safeCommandFailures({ Op: async () => Promise.reject(err) }, 'h1');
    await expect(handlers.Op!({}, { log: silentLogger } as unknown as CallContext)).rejects.toMatchObject({ code: 'ServiceUnavailable', message: expect.stringContaining('its outcome is unknown') });

    const again = await runner.run('t.stdin', { path: join(dir, 'f.pid'), chapSecret: OTHER });
    expect(JSON.parse(again.stdout)).toMatchObject({ input: `${OTHER}\n` });
    expect(helper.pid).not.toBe(first);
    expect(helper.starts).toBe(2);
  });

  it('a helper that stops answering is taken for hung past the command’s own bound: killed, the command failed as lost, the next gets a new helper', async () => {
    const helper = newHelper(200);
    const hung = CommandCatalog.fromText(['t.slow = <node> <source> <path> 0', 't.slow.timeoutMs = 300', 't.quick = <node> <source> <path> 0'].join('\n'));
    const runner = new CommandRunner(hung, { fixed: { node: process.execPath, source: TOOL }, helper });
    await runner.run('t.quick', { path: join(dir, 'warm.pid') });
    const frozen = helper.pid!;
    // Frozen before the request is sent, so nothing of it can answer, not even the command's own timeout;
    // the client waits the command's bound (300 ms, kill graces, drain) and its margin, then gives up on it.
    process.kill(frozen, 'SIGSTOP');
    const pidFile = join(dir, 'slow.pid');
    const err = await failure(runner.run('t.slow', { path: pidFile }));
    expect(err.result).toMatchObject({ lost: true, timedOut: false });
    await eventually(async () => (alive(frozen) ? undefined : true), 30_000, 20);
    expect(existsSync(pidFile)).toBe(false);
    expect(JSON.parse((await runner.run('t.quick', { path: join(dir, 'after.pid') })).stdout)).toMatchObject({ argv: [join(dir, 'after.pid'), '0'] });
    expect(helper.starts).toBe(2);
  });

  it('a delegate SIGKILLed takes its helper and the commands it started with it', async () => {
    // A stand-in delegate: starts a long command through its helper, says the pids, and waits to be killed.
    const pidFile = join(dir, 'orphan.pid');
    const script = `
      const { CommandHelper } = await import(${JSON.stringify(helperEntry().replace(/command-helper\.js$/, 'helper-client.js'))});
      const h = new CommandHelper();
      void h.run(process.execPath, [${JSON.stringify(TOOL)}, ${JSON.stringify(pidFile)}, '60000'], { timeoutMs: 120000 });
      setInterval(() => { if (h.pid) process.stdout.write(String(h.pid) + '\\n'); }, 50);
    `;
    const delegate = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      let out = '';
      delegate.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      const helperPid = await eventually(async () => (out.includes('\n') ? Number(out.split('\n')[0]) : undefined), 60_000, 20);
      const command = await pidIn(pidFile);
      expect(alive(helperPid) && alive(command)).toBe(true);
      delegate.kill('SIGKILL');
      await eventually(async () => (alive(helperPid) || alive(command) ? undefined : true), 30_000, 20);
    } finally {
      delegate.kill('SIGKILL');
    }
  });
});
