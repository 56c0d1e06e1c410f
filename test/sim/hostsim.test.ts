import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanup, HOSTSIM, raw, sim, stripSimEnv, tmp, vms } from './helpers.js';

afterAll(cleanup);

describe('hostsim entry point', () => {
  it('starts with a shebang line', () => {
    expect(readFileSync(HOSTSIM, 'utf8').split('\n')[0]).toBe('#!/usr/bin/env node');
  });

  it('refuses to run without a state folder (exit 2)', () => {
    const r = raw(['xm', 'list']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no state folder');
    expect(r.stdout).toBe('');
  });

  it('takes the state folder from VBS_SIM_STATE', () => {
    const dir = tmp();
    const env = { ...stripSimEnv(process.env), VBS_SIM_STATE: dir };
    expect(raw(['vm', 'create', 'envvm'], { env }).code).toBe(0);
    expect(vms(dir).map((v) => v.name)).toEqual(['envvm']);
  });

  it('accepts --state=DIR and creates a missing folder', () => {
    const dir = join(tmp(), 'nested', 'state');
    const r = raw([`--state=${dir}`, 'vm', 'create', 'a']);
    expect(r.code).toBe(0);
    expect(existsSync(join(dir, 'state.json'))).toBe(true);
  });

  it('rejects an unknown tool with exit 2', () => {
    const r = sim(tmp(), ['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown tool 'frobnicate'");
  });

  it('takes the tool from the name it is invoked by (symlink)', () => {
    const dir = tmp();
    const bin = join(tmp(), 'bin');
    mkdirSync(bin);
    symlinkSync(HOSTSIM, join(bin, 'xm'));
    expect(sim(dir, ['vm', 'create', 'dom1']).code).toBe(0);
    const env = { ...stripSimEnv(process.env), VBS_SIM_STATE: dir };
    const r = raw(['list'], { env }, join(bin, 'xm'));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Name +ID +Mem VCPUs +State +Time\(s\)$/m);
    expect(r.stdout).toMatch(/^dom1 +1 +512 +1 +-b---- +1\.2$/m);
    // --state also works through the symlink
    const r2 = raw(['--state', dir, 'list'], {}, join(bin, 'xm'));
    expect(r2.stdout).toContain('dom1');
  });

  it('writes executable shims that work from PATH', () => {
    const dir = tmp();
    const bin = join(tmp(), 'shims');
    const r = sim(dir, ['shims', bin]);
    expect(r.code).toBe(0);
    for (const t of ['xm', 'xl', 'qm', 'lvcreate', 'lvremove', 'lvs', 'vgs', 'ietadm', 'iscsiadm'])
      expect(statSync(join(bin, t)).mode & 0o111).not.toBe(0);
    expect(sim(dir, ['vm', 'create', 'pathvm']).code).toBe(0);
    const env = { ...stripSimEnv(process.env), PATH: `${bin}:${process.env.PATH ?? ''}` };
    const out = spawnSyncPath('xm', ['list'], env);
    expect(out.status).toBe(0);
    expect(out.stdout).toContain('pathvm');
  });

  it('dump prints the whole state as JSON', () => {
    const dir = tmp();
    sim(dir, ['vm', 'create', 'x']);
    const r = sim(dir, ['dump']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).vms[0].name).toBe('x');
  });
});

function spawnSyncPath(cmd: string, args: string[], env: NodeJS.ProcessEnv) {
  return spawnSync(cmd, args, { env, encoding: 'utf8' });
}
