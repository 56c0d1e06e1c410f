import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The compiled simulator (the test command builds before vitest runs). */
export const HOSTSIM = fileURLToPath(new URL('../../dist/sim/hostsim.js', import.meta.url));

export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string;
  env?: NodeJS.ProcessEnv;
}

/** Runs `node hostsim.js --state <dir> <args>` and waits for it. */
export function sim(dir: string, args: string[], opts: RunOptions = {}): Result {
  return raw(['--state', dir, ...args], opts);
}

/** Runs the simulator with exactly these arguments. */
export function raw(args: string[], opts: RunOptions = {}, script = HOSTSIM): Result {
  const r = spawnSync(process.execPath, [script, ...args], {
    encoding: 'utf8',
    input: opts.input ?? '',
    env: opts.env ?? stripSimEnv(process.env),
    timeout: 30_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The same, without waiting (for parallel runs). */
export function simAsync(dir: string, args: string[]): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [HOSTSIM, '--state', dir, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: stripSimEnv(process.env),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export function stripSimEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const copy = { ...env };
  delete copy.VBS_SIM_STATE;
  return copy;
}

/** A fresh temporary folder; `cleanup()` removes every folder made this way. */
const made: string[] = [];
export function tmp(prefix = 'hostsim-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  made.push(d);
  return d;
}

export function cleanup(): void {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** A sparse file of `size` bytes (default 1 MiB). */
export function file(dir: string, name: string, size = 1024 * 1024): string {
  const p = join(dir, name);
  writeFileSync(p, '');
  truncateSync(p, size);
  return p;
}

export interface ListedVm {
  name: string;
  domid: number;
  disks: { dev: string; target: string; mode: 'r' | 'w'; kind: 'file' | 'phy' }[];
}

export function vms(dir: string): ListedVm[] {
  const r = sim(dir, ['vm', 'list']);
  if (r.code !== 0) throw new Error(`vm list failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as ListedVm[];
}

export function disksOf(dir: string, name: string): ListedVm['disks'] {
  const vm = vms(dir).find((v) => v.name === name);
  if (!vm) throw new Error(`no VM ${name}`);
  return vm.disks;
}
