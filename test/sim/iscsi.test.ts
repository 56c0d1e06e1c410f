import { writeFileSync } from 'node:fs';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cleanup, disksOf, file, sim, tmp } from './helpers.js';
import { freePort, startTgtd, type RealTarget } from './real-target.js';

afterAll(cleanup);

const IQN = 'iqn.2010-10.org.example:vol-0001';
const IQN2 = 'iqn.2010-10.org.example:vol-0002';
let dir: string;

beforeEach(() => {
  dir = tmp();
  expect(sim(dir, ['lvm', 'vgcreate', 'vg0', String(1024 ** 3)]).code).toBe(0);
  expect(sim(dir, ['lvcreate', '-L', '8M', '-n', 'vol-0001', 'vg0']).code).toBe(0);
});

function exportLv(tid = 1, iqn = IQN, lv = 'vol-0001'): void {
  expect(sim(dir, ['ietadm', '--op', 'new', `--tid=${tid}`, '--params', `Name=${iqn}`]).code).toBe(0);
  expect(sim(dir, ['ietadm', '--op', 'new', `--tid=${tid}`, '--lun=0', '--params', `Path=/dev/vg0/${lv},Type=fileio`]).code).toBe(0);
}

function login(iqn = IQN): void {
  expect(sim(dir, ['iscsiadm', '-m', 'discovery', '-t', 'sendtargets', '-p', '127.0.0.1:3260']).code).toBe(0);
  expect(sim(dir, ['iscsiadm', '-m', 'node', '-T', iqn, '-p', '127.0.0.1:3260', '--login']).code).toBe(0);
}

describe('ietadm', () => {
  it('creates a target and a LUN, listed like /proc/net/iet/volume', () => {
    exportLv();
    const r = sim(dir, ['iet', 'list']);
    expect(r.stdout).toBe(`tid:1 name:${IQN}\n\tlun:0 state:0 iotype:fileio iomode:wt blocks:16384 blocksize:512 path:/dev/vg0/vol-0001\n`);
    const show = sim(dir, ['ietadm', '--op', 'show', '--tid=1']);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain('QueuedCommands=32');
  });

  it('refuses a duplicate tid or name: "File exists." with exit 239 (-EEXIST)', () => {
    exportLv();
    const tid = sim(dir, ['ietadm', '--op', 'new', '--tid=1', '--params', `Name=${IQN2}`]);
    expect(tid).toEqual({ code: 239, stdout: '', stderr: 'File exists.\n' });
    const name = sim(dir, ['ietadm', '--op', 'new', '--tid=2', '--params', `Name=${IQN}`]);
    expect(name.code).toBe(239);
    const lun = sim(dir, ['ietadm', '--op', 'new', '--tid=1', '--lun=0', '--params', 'Path=/dev/vg0/vol-0001,Type=fileio']);
    expect(lun.code).toBe(239);
    expect(sim(dir, ['iet', 'list']).stdout.split('\n').filter((l) => l.startsWith('tid:'))).toHaveLength(1);
  });

  it('refuses missing targets and paths: "No such file or directory." with exit 254', () => {
    const t = sim(dir, ['ietadm', '--op', 'new', '--tid=9', '--lun=0', '--params', 'Path=/dev/vg0/vol-0001']);
    expect(t).toEqual({ code: 254, stdout: '', stderr: 'No such file or directory.\n' });
    expect(sim(dir, ['ietadm', '--op', 'new', '--tid=1', '--params', `Name=${IQN}`]).code).toBe(0);
    const p = sim(dir, ['ietadm', '--op', 'new', '--tid=1', '--lun=0', '--params', 'Path=/dev/vg0/ghost,Type=fileio']);
    expect(p.code).toBe(254);
    expect(sim(dir, ['ietadm', '--op', 'delete', '--tid=1', '--lun=3']).code).toBe(254);
    expect(sim(dir, ['ietadm', '--op', 'delete', '--tid=7']).code).toBe(254);
    expect(sim(dir, ['ietadm', '--op', 'show', '--tid=7']).code).toBe(254);
  });

  it('refuses bad parameters and command lines', () => {
    const type = sim(dir, ['ietadm', '--op', 'new', '--tid=1', '--params', 'Alias=x']);
    expect(type).toEqual({ code: 234, stdout: '', stderr: '' });
    const op = sim(dir, ['ietadm', '--tid=1']);
    expect(op.code).toBe(234);
    expect(op.stderr).toBe('You must specify the operation type\n');
    const opt = sim(dir, ['ietadm', '--op', 'new', '--bogus']);
    expect(opt.code).toBe(255);
    expect(opt.stderr).toBe("ietadm: unrecognized option '--bogus'\nTry `ietadm --help' for more information.\n");
    expect(sim(dir, ['ietadm', '--op', 'new', '--tid=1', '--params', `Name=${IQN}`]).code).toBe(0);
    const io = sim(dir, ['ietadm', '--op', 'new', '--tid=1', '--lun=0', '--params', 'Path=/dev/vg0/vol-0001,Type=floppy']);
    expect(io).toEqual({ code: 234, stdout: '', stderr: 'Invalid argument.\n' });
  });

  it('deletes a LUN and a target, but not a target with a session (EBUSY, 240)', () => {
    exportLv();
    login();
    const busy = sim(dir, ['ietadm', '--op', 'delete', '--tid=1']);
    expect(busy).toEqual({ code: 240, stdout: '', stderr: 'Device or resource busy.\n' });
    expect(sim(dir, ['iscsiadm', '-m', 'node', '-T', IQN, '-p', '127.0.0.1:3260', '--logout']).code).toBe(0);
    expect(sim(dir, ['ietadm', '--op', 'delete', '--tid=1', '--lun=0']).code).toBe(0);
    expect(sim(dir, ['ietadm', '--op', 'delete', '--tid=1']).code).toBe(0);
    expect(sim(dir, ['iet', 'list']).stdout).toBe('');
  });

  it('keeps an exported LV from being removed', () => {
    exportLv();
    const r = sim(dir, ['lvremove', '-f', 'vg0/vol-0001']);
    expect(r.code).toBe(5);
    expect(r.stderr).toBe('  Logical volume vg0/vol-0001 in use.\n');
  });
});

describe('iscsiadm', () => {
  it('discovers the targets the simulated IET serves', () => {
    exportLv();
    expect(sim(dir, ['lvcreate', '-L', '8M', '-n', 'vol-0002', 'vg0']).code).toBe(0);
    exportLv(2, IQN2, 'vol-0002');
    const r = sim(dir, ['iscsiadm', '-m', 'discovery', '-t', 'sendtargets', '-p', '127.0.0.1']);
    expect(r).toEqual({ code: 0, stdout: `127.0.0.1:3260,1 ${IQN}\n127.0.0.1:3260,1 ${IQN2}\n`, stderr: '' });
    const nodes = sim(dir, ['iscsiadm', '-m', 'node']);
    expect(nodes.stdout).toBe(`127.0.0.1:3260,1 ${IQN}\n127.0.0.1:3260,1 ${IQN2}\n`);
  });

  it('reports no portals (21) and unreachable portals (4)', () => {
    const none = sim(dir, ['iscsiadm', '-m', 'discovery', '-t', 'st', '-p', '127.0.0.1']);
    expect(none).toEqual({ code: 21, stdout: '', stderr: 'iscsiadm: No portals found\n' });
    expect(sim(dir, ['iet', 'portal', '10.1.1.1:3260']).code).toBe(0);
    const down = sim(dir, ['iscsiadm', '-m', 'discovery', '-t', 'st', '-p', '127.0.0.1']);
    expect(down.code).toBe(4);
    expect(down.stderr).toContain('iscsiadm: cannot make connection to 127.0.0.1: Connection refused');
    expect(down.stderr.endsWith('iscsiadm: Could not perform SendTargets discovery: encountered connection failure\n')).toBe(true);
  });

  it('logs in, lists the session, and exposes the LUN as a by-path device', () => {
    exportLv();
    expect(sim(dir, ['iscsiadm', '-m', 'discovery', '-t', 'st', '-p', '127.0.0.1']).code).toBe(0);
    const r = sim(dir, ['iscsiadm', '-m', 'node', '-T', IQN, '-p', '127.0.0.1', '--login']);
    expect(r).toEqual({
      code: 0,
      stdout:
        `Logging in to [iface: default, target: ${IQN}, portal: 127.0.0.1,3260]\n` +
        `Login to [iface: default, target: ${IQN}, portal: 127.0.0.1,3260] successful.\n`,
      stderr: '',
    });
    expect(sim(dir, ['iscsiadm', '-m', 'session']).stdout).toBe(`tcp: [1] 127.0.0.1:3260,1 ${IQN} (non-flash)\n`);
    const dev = sim(dir, ['iscsi', 'device', IQN, '0']);
    expect(dev).toEqual({ code: 0, stdout: `/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-${IQN}-lun-0\n`, stderr: '' });
    const backing = sim(dir, ['lvm', 'path', 'vg0/vol-0001']).stdout;
    expect(sim(dir, ['resolve', dev.stdout.trim()]).stdout).toBe(backing);
    expect(sim(dir, ['iscsi', 'device', IQN, '1']).code).toBe(1);
  });

  it('lets xm attach the by-path device with phy:, and shares the LV identity', () => {
    exportLv();
    login();
    const dev = sim(dir, ['iscsi', 'device', IQN, '0']).stdout.trim();
    for (const n of ['vm1', 'vm2']) expect(sim(dir, ['vm', 'create', n]).code).toBe(0);
    expect(sim(dir, ['xm', 'block-attach', 'vm1', `phy:${dev}`, 'xvdb', 'w']).code).toBe(0);
    expect(disksOf(dir, 'vm1')).toEqual([{ dev: 'xvdb', target: dev, mode: 'w', kind: 'phy' }]);
    const r = sim(dir, ['xm', 'block-attach', 'vm2', 'phy:/dev/vg0/vol-0001', 'xvdb', 'r']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'Error: Device 51728 (vbd) could not be connected.\nDevice /dev/vg0/vol-0001 is mounted read-write in a guest domain,\nand so cannot be mounted read-only now.\n',
    );
  });

  it('refuses a by-path device after logout', () => {
    exportLv();
    login();
    const dev = sim(dir, ['iscsi', 'device', IQN, '0']).stdout.trim();
    expect(sim(dir, ['iscsiadm', '-m', 'node', '-T', IQN, '-p', '127.0.0.1:3260', '-u']).code).toBe(0);
    expect(sim(dir, ['vm', 'create', 'vm1']).code).toBe(0);
    const r = sim(dir, ['xm', 'block-attach', 'vm1', `phy:${dev}`, 'xvdb', 'w']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`Error: Device 51728 (vbd) could not be connected. ${dev} does not exist.\n`);
  });

  it('refuses a second login (15) and logins without records (21)', () => {
    exportLv();
    login();
    const again = sim(dir, ['iscsiadm', '-m', 'node', '-T', IQN, '-p', '127.0.0.1:3260', '--login']);
    expect(again).toEqual({
      code: 15,
      stdout: '',
      stderr: 'iscsiadm: default: 1 session requested, but 1 already present.\niscsiadm: Could not log into all portals\n',
    });
    const none = sim(dir, ['iscsiadm', '-m', 'node', '-T', IQN2, '-p', '127.0.0.1:3260', '--login']);
    expect(none).toEqual({ code: 21, stdout: '', stderr: 'iscsiadm: No records found\n' });
    expect(sim(dir, ['iscsiadm', '-m', 'session']).stdout.split('\n').filter(Boolean)).toHaveLength(1);
  });

  it('fails to log in to a target that went away (19)', () => {
    exportLv();
    expect(sim(dir, ['iscsiadm', '-m', 'discovery', '-t', 'st', '-p', '127.0.0.1']).code).toBe(0);
    expect(sim(dir, ['ietadm', '--op', 'delete', '--tid=1', '--lun=0']).code).toBe(0);
    expect(sim(dir, ['ietadm', '--op', 'delete', '--tid=1']).code).toBe(0);
    const r = sim(dir, ['iscsiadm', '-m', 'node', '-T', IQN, '-p', '127.0.0.1:3260', '--login']);
    expect(r.code).toBe(19);
    expect(r.stdout).toBe(`Logging in to [iface: default, target: ${IQN}, portal: 127.0.0.1,3260]\n`);
    expect(r.stderr).toBe(
      `iscsiadm: Could not login to [iface: default, target: ${IQN}, portal: 127.0.0.1,3260].\n` +
        'iscsiadm: initiator reported error (19 - encountered non-retryable iSCSI login failure)\n' +
        'iscsiadm: Could not log into all portals\n',
    );
    expect(sim(dir, ['iscsiadm', '-m', 'session']).code).toBe(21);
  });

  it('logs out, and reports no sessions with exit 21', () => {
    exportLv();
    login();
    const out = sim(dir, ['iscsiadm', '-m', 'node', '-T', IQN, '-p', '127.0.0.1:3260', '--logout']);
    expect(out).toEqual({
      code: 0,
      stdout:
        `Logging out of session [sid: 1, target: ${IQN}, portal: 127.0.0.1,3260]\n` +
        `Logout of [sid: 1, target: ${IQN}, portal: 127.0.0.1,3260] successful.\n`,
      stderr: '',
    });
    const again = sim(dir, ['iscsiadm', '-m', 'node', '-T', IQN, '-p', '127.0.0.1:3260', '--logout']);
    expect(again).toEqual({ code: 21, stdout: '', stderr: 'iscsiadm: No matching sessions found\n' });
    expect(sim(dir, ['iscsiadm', '-m', 'session'])).toEqual({ code: 21, stdout: '', stderr: 'iscsiadm: No active sessions.\n' });
  });

  it('deletes node records', () => {
    exportLv();
    expect(sim(dir, ['iscsiadm', '-m', 'discovery', '-t', 'st', '-p', '127.0.0.1']).code).toBe(0);
    expect(sim(dir, ['iscsiadm', '-m', 'node', '-o', 'delete', '-T', IQN]).code).toBe(0);
    expect(sim(dir, ['iscsiadm', '-m', 'node']).code).toBe(21);
  });

  it('reaches test-defined targets on other portals', () => {
    const files = tmp('hostsim-files-');
    const lun = file(files, 'lun.img');
    writeFileSync(lun, 'x', { flag: 'r+' });
    expect(sim(dir, ['iet', 'portal', '127.0.0.1:3260']).code).toBe(0);
    expect(sim(dir, ['iscsi', 'target', 'add', '127.0.0.2:3261', IQN2, `1=${lun}`]).code).toBe(0);
    const d = sim(dir, ['iscsiadm', '-m', 'discovery', '-t', 'st', '-p', '127.0.0.2:3261']);
    expect(d.stdout).toBe(`127.0.0.2:3261,1 ${IQN2}\n`);
    expect(sim(dir, ['iscsiadm', '-m', 'node', '-T', IQN2, '--login']).code).toBe(0);
    const dev = sim(dir, ['iscsi', 'device', IQN2, '1']).stdout.trim();
    expect(dev).toBe(`/dev/disk/by-path/ip-127.0.0.2:3261-iscsi-${IQN2}-lun-1`);
    expect(sim(dir, ['resolve', dev]).stdout.trim()).toBe(lun);
  });

  it('rejects a missing mode', () => {
    const r = sim(dir, ['iscsiadm']);
    expect(r.code).toBe(7);
  });
});

describe('iscsiadm against a real target (tgtd, through libiscsi)', () => {
  const VOL = 'iqn.2010-10.org.example:vol-0123456789abcdef0';
  let tgt: RealTarget | undefined;
  afterEach(async () => {
    await tgt?.stop();
    tgt = undefined;
  });

  async function realTarget(): Promise<{ t: RealTarget; dev: string }> {
    tgt = await startTgtd();
    tgt.add(VOL, file(tmp('hostsim-lun-'), 'lun.img', 4 * 1024 * 1024));
    return { t: tgt, dev: `/dev/disk/by-path/ip-${tgt.portal}-iscsi-${VOL}-lun-1` };
  }

  it('discovers, logs in, attaches the by-path device with phy: and logs out, in iscsiadm\'s formats', async () => {
    const { t, dev } = await realTarget();
    const portalShown = t.portal.replace(':', ',');
    expect(sim(dir, ['iscsiadm', '-m', 'discovery', '-t', 'sendtargets', '-p', t.portal])).toEqual({ code: 0, stdout: `${t.portal},1 ${VOL}\n`, stderr: '' });
    expect(sim(dir, ['iscsiadm', '-m', 'node']).stdout).toBe(`${t.portal},1 ${VOL}\n`);
    const login = sim(dir, ['iscsiadm', '-m', 'node', '-T', VOL, '-p', t.portal, '--login']);
    expect(login).toEqual({
      code: 0,
      stdout: `Logging in to [iface: default, target: ${VOL}, portal: ${portalShown}]\nLogin to [iface: default, target: ${VOL}, portal: ${portalShown}] successful.\n`,
      stderr: '',
    });
    expect(sim(dir, ['iscsiadm', '-m', 'node', '-T', VOL, '-p', t.portal, '--login']).code).toBe(15);
    expect(sim(dir, ['iscsi', 'device', VOL, '1']).stdout).toBe(`${dev}\n`);
    expect(sim(dir, ['iscsi', 'device', VOL, '0']).code).toBe(1);
    // No host file behind a real LUN: the device path is the disk's identity.
    expect(sim(dir, ['resolve', dev]).stdout).toBe(`${dev}\n`);
    for (const n of ['vm1', 'vm2']) expect(sim(dir, ['vm', 'create', n]).code).toBe(0);
    expect(sim(dir, ['xm', 'block-attach', 'vm1', `phy:${dev}`, 'xvdb', 'w']).code).toBe(0);
    expect(disksOf(dir, 'vm1')).toEqual([{ dev: 'xvdb', target: dev, mode: 'w', kind: 'phy' }]);
    const shared = sim(dir, ['xm', 'block-attach', 'vm2', `phy:${dev}`, 'xvdb', 'r']);
    expect(shared.code).toBe(1);
    expect(shared.stderr).toContain(`Device ${dev} is mounted read-write in a guest domain`);
    const noLun = sim(dir, ['xm', 'block-attach', 'vm2', `phy:${dev.replace(/-lun-1$/, '-lun-2')}`, 'xvdc', 'r']);
    expect(noLun.stderr).toContain('does not exist.');
    expect(sim(dir, ['xm', 'block-detach', 'vm1', 'xvdb']).code).toBe(0);
    expect(sim(dir, ['iscsiadm', '-m', 'node', '-T', VOL, '-p', t.portal, '--logout']).code).toBe(0);
    expect(sim(dir, ['iscsiadm', '-m', 'node', '-T', VOL, '-p', t.portal, '--logout']).code).toBe(21);
    expect(sim(dir, ['xm', 'block-attach', 'vm1', `phy:${dev}`, 'xvdb', 'w']).code).toBe(1);
  });

  it('fails a login to a target that went away with 19, and to a portal that went away with 4', async () => {
    const { t } = await realTarget();
    // tgtd answers a login for an unknown target with "Target not found" only while it serves another.
    t.add(`${VOL}1`, file(tmp('hostsim-lun-'), 'other.img'));
    expect(sim(dir, ['iscsiadm', '-m', 'discovery', '-t', 'st', '-p', t.portal]).code).toBe(0);
    t.remove(1);
    const gone = sim(dir, ['iscsiadm', '-m', 'node', '-T', VOL, '-p', t.portal, '--login']);
    expect(gone.code).toBe(19);
    expect(gone.stderr).toContain('initiator reported error (19 - encountered non-retryable iSCSI login failure)');
    t.add(VOL, file(tmp('hostsim-lun-'), 'lun.img'));
    await t.stop();
    const down = sim(dir, ['iscsiadm', '-m', 'node', '-T', VOL, '-p', t.portal, '--login']);
    expect(down.code).toBe(4);
    expect(down.stderr).toContain('initiator reported error (4 - encountered connection failure)');
    expect(sim(dir, ['iscsiadm', '-m', 'session']).code).toBe(21);
  });

  it('reports a portal where nothing answers as a connection failure (4) when no simulated target serves it', async () => {
    expect(sim(dir, ['iet', 'portal', '10.1.1.1:3260']).code).toBe(0);
    const port = await freePort();
    const r = sim(dir, ['iscsiadm', '-m', 'discovery', '-t', 'st', '-p', `127.0.0.1:${port}`]);
    expect(r.code).toBe(4);
    expect(r.stderr.endsWith('iscsiadm: Could not perform SendTargets discovery: encountered connection failure\n')).toBe(true);
  });
});
