import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanup, sim, simAsync, tmp, vms } from './helpers.js';

afterAll(cleanup);

/** A pid that is not running: a child that has already exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

describe('state folder', () => {
  it('keeps the state as JSON written by rename (no temporary files left)', () => {
    const dir = tmp();
    expect(sim(dir, ['vm', 'create', 'a']).code).toBe(0);
    const st = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8'));
    expect(st.vms[0].name).toBe('a');
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp') || f.startsWith('.lock'))).toEqual([]);
  });

  it('breaks a lock left by a dead process', () => {
    const dir = tmp();
    expect(sim(dir, ['vm', 'create', 'a']).code).toBe(0);
    writeFileSync(join(dir, '.lock'), `${deadPid()} deadbeef`);
    const r = sim(dir, ['vm', 'create', 'b']);
    expect(r.code).toBe(0);
    expect(vms(dir).map((v) => v.name)).toEqual(['a', 'b']);
    expect(existsSync(join(dir, '.lock'))).toBe(false);
  });

  it('breaks an empty lock only once it is old', () => {
    const dir = tmp();
    writeFileSync(join(dir, '.lock'), '');
    const old = new Date(Date.now() - 60_000);
    utimesSync(join(dir, '.lock'), old, old);
    expect(sim(dir, ['vm', 'create', 'a']).code).toBe(0);
  });

  it('waits for a lock held by a live process', async () => {
    const dir = tmp();
    writeFileSync(join(dir, '.lock'), `${process.pid} cafe`);
    const pending = simAsync(dir, ['vm', 'create', 'late']);
    await new Promise((r) => setTimeout(r, 800));
    expect(vms(dir)).toEqual([]); // still blocked
    // release it, as its holder would
    const { unlinkSync } = await import('node:fs');
    unlinkSync(join(dir, '.lock'));
    const r = await pending;
    expect(r.code).toBe(0);
    expect(vms(dir).map((v) => v.name)).toEqual(['late']);
  });

  it('serialises many concurrent writers without losing an update', async () => {
    const dir = tmp();
    const names = Array.from({ length: 16 }, (_, i) => `vm${i}`);
    const results = await Promise.all(names.map((n) => simAsync(dir, ['vm', 'create', n])));
    expect(results.every((r) => r.code === 0)).toBe(true);
    const listed = vms(dir);
    expect(listed.map((v) => v.name).sort()).toEqual([...names].sort());
    expect(new Set(listed.map((v) => v.domid)).size).toBe(16);
  });
});
