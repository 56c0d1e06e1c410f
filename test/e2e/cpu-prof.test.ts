import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { breakdown, type CpuProfile } from '../../src/bench/profile-breakdown.js';
import { startVbs, VBS_BIN } from './harness.js';

/**
 * `vbs up --cpu-prof DIR` (the bench's --profile): every service runs with
 * `node --cpu-prof` and leaves its profile in DIR/<service>/ when it stops;
 * the breakdown reads it. A value that names no folder is refused before
 * anything starts.
 */
const profiles = mkdtempSync(join(tmpdir(), 'vbs-cpu-prof-'));
afterAll(() => rmSync(profiles, { recursive: true, force: true }));

it('each service writes a CPU profile into its folder when it stops, and the breakdown reads it', { timeout: 180_000 }, async () => {
  const vbs = await startVbs(['--cpu-prof', profiles]);
  try {
    const created = await vbs.cli('create-volume', '1', 'profiled', '--wait');
    expect(created.code, created.stderr).toBe(0);
  } finally {
    await vbs.stop();
  }
  for (const service of ['front', 'volume-delegate', 'vmm-delegate']) {
    const files = readdirSync(join(profiles, service)).filter((f) => f.endsWith('.cpuprofile'));
    expect(files, service).toHaveLength(1);
    const profile = JSON.parse(readFileSync(join(profiles, service, files[0]!), 'utf8')) as CpuProfile;
    const { busyMs } = breakdown(profile);
    expect(Object.values(busyMs).reduce((a, b) => a + b, 0), service).toBeGreaterThan(0);
  }
});

it('refuses an empty --cpu-prof before starting anything', () => {
  const data = mkdtempSync(join(tmpdir(), 'vbs-cpu-prof-bad-'));
  try {
    let code = 0;
    let stderr = '';
    try {
      execFileSync(process.execPath, [VBS_BIN, 'up', '--data', data, '--port', '0', '--cpu-prof', ''], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
    } catch (err) {
      code = (err as { status: number }).status;
      stderr = String((err as { stderr: Buffer }).stderr);
    }
    expect(code).toBe(2);
    expect(stderr).toContain('--cpu-prof must name a folder');
  } finally {
    rmSync(data, { recursive: true, force: true });
  }
});
