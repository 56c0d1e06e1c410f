import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeAuthOf, parseRecord, withAuth } from '../../src/iscsi/node-record.js';
import { startTgtd, type RealTarget } from '../sim/real-target.js';

/**
 * A CHAP account for open-iscsi hosts (issue 17 item 8): vbs-iscsi-node-auth
 * writes it into the target's node record with the secret read from standard
 * input, and the simulator's iscsiadm, whose login sends the record's
 * account, is refused by a real tgtd that requires CHAP without it or with a
 * wrong secret, and admitted with the right one.
 */
const ROOT = resolve(import.meta.dirname, '../..');
const TOOL = join(ROOT, 'dist', 'iscsi', 'node-auth-tool.js');
const HOSTSIM = join(ROOT, 'dist', 'sim', 'hostsim.js');
const IQN = 'iqn.2026-11.org.vbs:vol-0000000000000000c';
const SECRET = 'Rk3_9vQ-zYp2LmN8xWc4TbHs';
const USER = 'vol-0000000000000000c.host1';

// A record as open-iscsi 2.1 writes it at discovery (trimmed).
const RECORD = [
  '# BEGIN RECORD 2.1.8',
  `node.name = ${IQN}`,
  'node.tpgt = 1',
  'node.startup = manual',
  'node.session.auth.authmethod = None',
  'node.session.timeo.replacement_timeout = 120',
  'node.conn[0].address = 10.0.0.5',
  'node.conn[0].port = 3260',
  '# END RECORD',
  '',
].join('\n');

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vbs-node-auth-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The environment of a host command: no CHAP account of the test runner's. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.LIBISCSI_CHAP_USERNAME;
  delete env.LIBISCSI_CHAP_PASSWORD;
  return env;
}

function tool(args: string[], stdin = ''): { code: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [TOOL, ...args], { input: stdin, encoding: 'utf8', env: cleanEnv(), timeout: 30_000 });
  return { code: r.status, stderr: r.stderr };
}

describe('a node record', () => {
  it('gets the CHAP lines before # END RECORD, every other line kept, and loses them again', () => {
    const set = withAuth(RECORD, { user: USER, secret: SECRET });
    expect(set.split('\n').slice(-6)).toEqual([
      'node.session.auth.authmethod = CHAP',
      `node.session.auth.username = ${USER}`,
      `node.session.auth.password = ${SECRET}`,
      `node.session.auth.password_length = ${SECRET.length}`,
      '# END RECORD',
      '',
    ]);
    expect(parseRecord(set).get('node.session.timeo.replacement_timeout')).toBe('120');
    expect(nodeAuthOf(set)).toEqual({ user: USER, secret: SECRET });
    // Set again: one of each line, never two.
    expect(withAuth(set, { user: USER, secret: SECRET })).toBe(set);
    const cleared = withAuth(set, undefined);
    expect(cleared).not.toContain(SECRET);
    expect(parseRecord(cleared).get('node.session.auth.authmethod')).toBe('None');
    expect(nodeAuthOf(cleared)).toBeUndefined();
  });
});

describe('vbs-iscsi-node-auth', () => {
  it("writes the account into every interface's record of the target at the portal (either layout), 0600, the secret from stdin only", () => {
    const nodes = join(dir, 'nodes');
    const newLayout = join(nodes, IQN, '10.0.0.5,3260,1');
    mkdirSync(newLayout, { recursive: true });
    writeFileSync(join(newLayout, 'default'), RECORD);
    writeFileSync(join(newLayout, 'iface1'), RECORD);
    // Another portal's record stays as it was.
    mkdirSync(join(nodes, IQN, '10.0.0.6,3260,1'), { recursive: true });
    writeFileSync(join(nodes, IQN, '10.0.0.6,3260,1', 'default'), RECORD);
    // The layout before open-iscsi 2.0-865: the portal's entry is the record.
    const old = 'iqn.2026-11.org.vbs:vol-0000000000000000d';
    mkdirSync(join(nodes, old), { recursive: true });
    writeFileSync(join(nodes, old, '10.0.0.5,3260,1'), RECORD);

    expect(tool(['--nodes', nodes, 'set', '-T', IQN, '-p', '10.0.0.5:3260', '--user', USER, '--password-stdin'], `${SECRET}\n`)).toEqual({ code: 0, stderr: '' });
    for (const f of ['default', 'iface1']) {
      expect(nodeAuthOf(readFileSync(join(newLayout, f), 'utf8'))).toEqual({ user: USER, secret: SECRET });
      expect(statSync(join(newLayout, f)).mode & 0o777).toBe(0o600);
    }
    expect(readFileSync(join(nodes, IQN, '10.0.0.6,3260,1', 'default'), 'utf8')).toBe(RECORD);

    expect(tool(['--nodes', nodes, 'set', '-T', old, '-p', '10.0.0.5', '--user', USER, '--password-stdin'], SECRET).code).toBe(0);
    expect(nodeAuthOf(readFileSync(join(nodes, old, '10.0.0.5,3260,1'), 'utf8'))).toEqual({ user: USER, secret: SECRET });

    expect(tool(['--nodes', nodes, 'clear', '-T', IQN, '-p', '10.0.0.5:3260']).code).toBe(0);
    expect(readFileSync(join(newLayout, 'default'), 'utf8')).not.toContain(SECRET);
  });

  it("answers iscsiadm's 21 without a record, and 7 for a bad value without repeating it; nothing is written", () => {
    const nodes = join(dir, 'empty');
    mkdirSync(nodes);
    const none = tool(['--nodes', nodes, 'set', '-T', IQN, '-p', '10.0.0.5:3260', '--user', USER, '--password-stdin'], SECRET);
    expect(none.code).toBe(21);
    expect(none.stderr).toMatch(/No records found/);
    const badSecret = 'has space=and,comma\nnode.startup = automatic';
    const bad = tool(['--nodes', nodes, 'set', '-T', IQN, '-p', '10.0.0.5:3260', '--user', USER, '--password-stdin'], badSecret);
    expect(bad.code).toBe(7);
    expect(bad.stderr).not.toContain('comma');
    for (const args of [
      ['set', '-T', 'not-an-iqn', '-p', '10.0.0.5', '--user', USER, '--password-stdin'],
      ['set', '-T', IQN, '-p', 'host.example', '--user', USER, '--password-stdin'],
      ['set', '-T', IQN, '-p', '10.0.0.5', '--user', 'a b', '--password-stdin'],
      ['set', '-T', IQN, '-p', '10.0.0.5', '--user', USER, '--password', SECRET],
      ['--nodes', 'relative', 'clear', '-T', IQN, '-p', '10.0.0.5'],
    ]) {
      const r = tool(args, SECRET);
      expect(r.code).toBe(7);
      expect(r.stderr).not.toContain(SECRET);
    }
  });
});

describe("the simulator's iscsiadm against a real tgtd that requires CHAP", { timeout: 120_000 }, () => {
  let target: RealTarget;
  let state: string;
  let nodes: string;

  beforeAll(async () => {
    target = await startTgtd();
    const lun = join(dir, 'lun1');
    writeFileSync(lun, '');
    truncateSync(lun, 4 * 1024 * 1024);
    const tid = target.add(IQN, lun);
    // The account, as the volume delegate makes it (its secret here is a test's, not a deployment's).
    for (const args of [
      ['--op', 'new', '--mode', 'account', '--user', USER, '--password', SECRET],
      ['--op', 'bind', '--mode', 'account', '--tid', String(tid), '--user', USER],
    ]) {
      const r = spawnSync('tgtadm', ['-C', String(target.control), '--lld', 'iscsi', ...args], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
    }
    state = join(dir, 'sim');
    nodes = join(state, 'iscsi', 'nodes');
  });
  afterAll(async () => {
    await target?.stop();
  });

  const iscsiadm = (...args: string[]) => {
    const r = spawnSync(process.execPath, [HOSTSIM, '--state', state, 'iscsiadm', ...args], { encoding: 'utf8', env: cleanEnv(), timeout: 60_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const login = () => iscsiadm('-m', 'node', '-T', IQN, '-p', target.portal, '--login');
  const setAccount = (secret: string) => tool(['--nodes', nodes, 'set', '-T', IQN, '-p', target.portal, '--user', USER, '--password-stdin'], secret).code;

  it('refuses a login without an account or with a wrong secret (24), admits the right one, and forgets the record with the account', () => {
    expect(iscsiadm('-m', 'discovery', '-t', 'sendtargets', '-p', target.portal)).toMatchObject({ code: 0, stdout: `${target.portal},1 ${IQN}\n` });
    const record = join(nodes, IQN, `${target.portal.replace(':', ',')},1`, 'default');
    expect(parseRecord(readFileSync(record, 'utf8')).get('node.session.auth.authmethod')).toBe('None');

    const none = login();
    expect(none.code).toBe(24);
    expect(none.stderr).toMatch(/authorization failure/);

    expect(setAccount('Wrong_secret_0123456789')).toBe(0);
    expect(login().code).toBe(24);
    expect(iscsiadm('-m', 'session').code).toBe(21);

    expect(setAccount(SECRET)).toBe(0);
    expect(login()).toMatchObject({ code: 0, stdout: expect.stringMatching(/Login to .* successful/) });
    expect(iscsiadm('-m', 'session').stdout).toContain(IQN);
    // -o show masks the secret, as iscsiadm does.
    const shown = iscsiadm('-m', 'node', '-T', IQN, '-p', target.portal, '-o', 'show');
    expect(shown.stdout).toContain(`node.session.auth.username = ${USER}`);
    expect(shown.stdout).toContain('node.session.auth.password = ********');
    expect(shown.stdout).not.toContain(SECRET);

    expect(iscsiadm('-m', 'node', '-T', IQN, '-p', target.portal, '--logout').code).toBe(0);
    expect(iscsiadm('-m', 'node', '-T', IQN, '-p', target.portal, '-o', 'delete').code).toBe(0);
    expect(existsSync(join(nodes, IQN))).toBe(false);
    // No record, no login: the account went with it.
    expect(login().code).toBe(21);
  });

  it('takes a setting by -o update -n -v as iscsiadm does (a record only the tool reads)', () => {
    expect(iscsiadm('-m', 'discovery', '-t', 'st', '-p', target.portal).code).toBe(0);
    expect(iscsiadm('-m', 'node', '-T', IQN, '-p', target.portal, '-o', 'update', '-n', 'node.startup', '-v', 'automatic').code).toBe(0);
    expect(iscsiadm('-m', 'node', '-T', IQN, '-p', target.portal, '-o', 'show').stdout).toContain('node.startup = automatic');
    expect(iscsiadm('-m', 'node', '-T', IQN, '-p', target.portal, '-o', 'update', '-n', 'node.startup').code).toBe(7);
    expect(iscsiadm('-m', 'node', '-T', IQN, '-p', target.portal, '-o', 'delete').code).toBe(0);
  });
});
