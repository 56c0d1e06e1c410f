import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { cleanup, disksOf, file, HOSTSIM, sim, simAsync, stripSimEnv, tmp, vms } from './helpers.js';

afterAll(cleanup);

let dir: string;
let img: string;

function fault(kind: 'fail' | 'fail-after' | 'hang', name: string, content: string): void {
  mkdirSync(join(dir, kind), { recursive: true });
  writeFileSync(join(dir, kind, name), content);
}

beforeEach(() => {
  dir = tmp();
  img = file(tmp('hostsim-files-'), 'a.img');
  expect(sim(dir, ['vm', 'create', 'vm1']).code).toBe(0);
});

describe('fail/ files', () => {
  it('print their text, exit 1 and change nothing, until removed', () => {
    fault('fail', 'xm.block-attach', 'Error: simulated xend trouble\n');
    for (let i = 0; i < 2; i++) {
      const r = sim(dir, ['xm', 'block-attach', 'vm1', `file:${img}`, 'xvdb', 'w']);
      expect(r).toEqual({ code: 1, stdout: '', stderr: 'Error: simulated xend trouble\n' });
    }
    expect(disksOf(dir, 'vm1')).toEqual([]);
    // other verbs of the tool are not affected
    expect(sim(dir, ['xm', 'list']).code).toBe(0);
  });

  it('use a default message when empty', () => {
    fault('fail', 'lvcreate.create', '');
    const r = sim(dir, ['lvcreate', '-L', '4M', '-n', 'x', 'vg']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('lvcreate: simulated failure (lvcreate.create)\n');
  });

  it('fail only as many times as the .count file says', () => {
    fault('fail', 'xm.block-attach', 'boom\n');
    fault('fail', 'xm.block-attach.count', '2\n');
    expect(sim(dir, ['xm', 'block-attach', 'vm1', `file:${img}`, 'xvdb', 'w']).code).toBe(1);
    expect(readFileSync(join(dir, 'fail', 'xm.block-attach.count'), 'utf8').trim()).toBe('1');
    expect(sim(dir, ['xm', 'block-attach', 'vm1', `file:${img}`, 'xvdb', 'w']).code).toBe(1);
    expect(sim(dir, ['xm', 'block-attach', 'vm1', `file:${img}`, 'xvdb', 'w']).code).toBe(0);
    expect(readFileSync(join(dir, 'fail', 'xm.block-attach.count'), 'utf8').trim()).toBe('0');
    expect(disksOf(dir, 'vm1')).toHaveLength(1);
  });

  it('share the count between parallel commands', async () => {
    for (let i = 0; i < 6; i++) expect(sim(dir, ['vm', 'create', `p${i}`]).code).toBe(0);
    fault('fail', 'xm.list', 'down\n');
    fault('fail', 'xm.list.count', '3');
    const results = await Promise.all(Array.from({ length: 6 }, () => simAsync(dir, ['xm', 'list'])));
    expect(results.filter((r) => r.code === 1)).toHaveLength(3);
    expect(results.filter((r) => r.code === 0)).toHaveLength(3);
  });

  it('take their exit code from a .exit file', () => {
    fault('fail', 'iscsiadm.login', 'iscsiadm: initiator reported error (24 - iSCSI login failed due to authorization failure)\n');
    fault('fail', 'iscsiadm.login.exit', '24');
    const r = sim(dir, ['iscsiadm', '-m', 'node', '-T', 'iqn.x', '-p', '127.0.0.1', '--login']);
    expect(r.code).toBe(24);
    expect(r.stderr).toContain('authorization failure');
  });

  it('match every verb when named after the tool alone', () => {
    fault('fail', 'qm', 'qm down\n');
    expect(sim(dir, ['qm', 'config', '100']).stderr).toBe('qm down\n');
    expect(sim(dir, ['qm', 'set', '100', '--memory', '1']).code).toBe(1);
  });

  it('work for every tool and verb', () => {
    const cases: [string, string[]][] = [
      ['xl.block-attach', ['xl', 'block-attach', 'vm1', `vdev=xvdb,target=${img}`]],
      ['xm.block-detach', ['xm', 'block-detach', 'vm1', 'xvdb']],
      ['xl.block-list', ['xl', 'block-list', 'vm1']],
      ['qm.set', ['qm', 'set', '100', '--scsi1', img]],
      ['lvcreate.snapshot', ['lvcreate', '-s', '-L', '4M', '-n', 's', 'vg/o']],
      ['lvremove.remove', ['lvremove', '-f', 'vg/x']],
      ['lvs.list', ['lvs']],
      ['vgs.list', ['vgs']],
      ['ietadm.new', ['ietadm', '--op', 'new', '--tid=1', '--params', 'Name=iqn.x']],
      ['ietadm.delete', ['ietadm', '--op=delete', '--tid=1']],
      ['iscsiadm.discovery', ['iscsiadm', '-m', 'discovery', '-t', 'st', '-p', '127.0.0.1']],
      ['iscsiadm.logout', ['iscsiadm', '-m', 'node', '-u']],
      ['iscsiadm.session', ['iscsiadm', '-m', 'session']],
    ];
    for (const [name, args] of cases) {
      fault('fail', name, `injected ${name}\n`);
      const r = sim(dir, args);
      expect(r.code, name).toBe(1);
      expect(r.stderr, name).toBe(`injected ${name}\n`);
    }
    // `lvm lvcreate` is the same tool as `lvcreate`
    fault('fail', 'lvcreate.create', 'via lvm\n');
    expect(sim(dir, ['lvm', 'lvcreate', '-L', '4M', '-n', 'x', 'vg']).stderr).toBe('via lvm\n');
  });

  it('do not apply to management verbs', () => {
    fault('fail', 'vm', 'no\n');
    fault('fail', 'vm.create', 'no\n');
    expect(sim(dir, ['vm', 'create', 'vm2']).code).toBe(0);
    expect(vms(dir).map((v) => v.name)).toEqual(['vm1', 'vm2']);
  });
});

describe('fail-after/ files', () => {
  it('let the command act, then report a failure (a tool that died after doing its work), as often as .count says', () => {
    fault('fail-after', 'xm.block-attach', 'Error: libvirt timed out\n');
    fault('fail-after', 'xm.block-attach.count', '1');
    fault('fail-after', 'xm.block-attach.exit', '3');
    const r = sim(dir, ['xm', 'block-attach', 'vm1', `file:${img}`, 'xvdb', 'w']);
    expect(r).toMatchObject({ code: 3, stderr: 'Error: libvirt timed out\n' });
    expect(disksOf(dir, 'vm1')).toEqual([{ dev: 'xvdb', target: img, mode: 'w', kind: 'file' }]);
    // The count is spent: the next command reports its own outcome.
    expect(sim(dir, ['xm', 'block-detach', 'vm1', 'xvdb']).code).toBe(0);
    expect(sim(dir, ['xm', 'block-attach', 'vm1', `file:${img}`, 'xvdb', 'w']).code).toBe(0);
  });
});

describe('hang/ files', () => {
  it('delay the command by the number of seconds in the file, then run it', () => {
    fault('hang', 'xm.block-attach', '0.7');
    const t0 = Date.now();
    const r = sim(dir, ['xm', 'block-attach', 'vm1', `file:${img}`, 'xvdb', 'w']);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(650);
    expect(r.code).toBe(0);
    expect(disksOf(dir, 'vm1')).toHaveLength(1);
  });

  it('hang (default an hour) without holding the state lock, until killed', async () => {
    fault('hang', 'xm.block-attach', '');
    // Armed once: the count going to 0 is the command entering its hang (no fixed wait).
    fault('hang', 'xm.block-attach.count', '1');
    const child = spawn(process.execPath, [HOSTSIM, '--state', dir, 'xm', 'block-attach', 'vm1', `file:${img}`, 'xvdb', 'w'], {
      stdio: 'ignore',
      env: stripSimEnv(process.env),
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const countFile = join(dir, 'hang', 'xm.block-attach.count');
    await eventually(() => readFileSync(countFile, 'utf8').trim() === '0', 'the command to enter its hang');
    expect(child.exitCode).toBeNull();
    // other commands still work meanwhile
    expect(sim(dir, ['vm', 'create', 'other']).code).toBe(0);
    child.kill('SIGKILL');
    await exited;
    expect(disksOf(dir, 'vm1')).toEqual([]);
  });

  it('end once the file is removed: the command then runs as usual', async () => {
    fault('hang', 'xm.block-attach', '');
    const child = spawn(process.execPath, [HOSTSIM, '--state', dir, 'xm', 'block-attach', 'vm1', `file:${img}`, 'xvdb', 'w'], {
      stdio: 'ignore',
      env: stripSimEnv(process.env),
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    // Held: the disk is not attached while the file is there (the command is still running).
    expect(disksOf(dir, 'vm1')).toEqual([]);
    expect(child.exitCode).toBeNull();
    rmSync(join(dir, 'hang', 'xm.block-attach'));
    expect(await exited).toBe(0);
    expect(disksOf(dir, 'vm1')).toHaveLength(1);
  });

  it('honour a .count file', () => {
    fault('hang', 'xm.list', '5');
    fault('hang', 'xm.list.count', '0');
    const t0 = Date.now();
    expect(sim(dir, ['xm', 'list']).code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(4000);
  });
});

/** Polls a look at the state folder until it holds, bounded. */
async function eventually(check: () => boolean, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
