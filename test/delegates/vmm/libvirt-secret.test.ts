import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CommandCatalog } from '../../../src/commands/catalog.js';
import { CommandFailed, type CommandResult, type CommandRunner } from '../../../src/commands/runner.js';
import { DEFAULT_COMMANDS_FILE } from '../../../src/core/paths.js';
import { VmmAdapter } from '../../../src/delegates/vmm/adapter.js';
import { iscsiUrl } from '../../../src/delegates/vmm/libvirt-disk.js';
import { iscsiLun } from '../../../src/delegates/vmm/iscsi-target.js';
import { diskSecret, secretXml } from '../../../src/delegates/vmm/libvirt-secret.js';

/**
 * The libvirt adapter's CHAP secrets with its runner injected (the real
 * libvirtd case is in test/system/libvirt.test.ts): which virsh patterns run,
 * in which order, with which values, and what the files they read hold. The
 * secret goes only to secret-set, in a private file removed after.
 */
const VOL = 'vol-0000000000000000e';
const IQN = `iqn.2026-11.org.vbs:${VOL}`;
const SECRET = 'Lv7_qR2-mX9zTp4KwB8nYc3J';
const SOURCE = { kind: 'iscsi', portal: '127.0.0.1:3260', iqn: IQN, lun: 1, chapUser: `${VOL}.host1`, chapSecret: SECRET };
const URL = iscsiUrl(iscsiLun(SOURCE));

const domain = (disks: string[]) => `<domain type='qemu'><name>vm1</name><devices>${disks.join('')}</devices></domain>`;
const networkDisk = (dev: string) =>
  `<disk type='network' device='disk'><source protocol='iscsi' name='${IQN}/1'><host name='127.0.0.1' port='3260'/></source><target dev='${dev}' bus='scsi'/></disk>`;
const fileDisk = (dev: string) => `<disk type='file' device='disk'><source file='/srv/vbs/vol-00000000000000001.img'/><target dev='${dev}' bus='scsi'/></disk>`;

type Step = string | 'fail' | { fail: string };
interface Ran {
  action: string;
  params: Record<string, string>;
  file?: string;
}

/** A runner that plays a libvirt host: `script[action]` answers in order (the last from then on); what each run got is recorded, with the file a <path> named. */
function host(script: Record<string, Step[]>): { runner: CommandRunner; ran: Ran[] } {
  const catalog = CommandCatalog.fromFile(DEFAULT_COMMANDS_FILE);
  const ran: Ran[] = [];
  const run = async (key: string, params: Record<string, string>): Promise<CommandResult> => {
    const action = key.slice('vmm.libvirt.'.length);
    ran.push({ action, params: { ...params }, ...(params.path ? { file: readFileSync(params.path, 'utf8') } : {}) });
    const queue = script[action] ?? [''];
    const next = queue.length > 1 ? queue.shift()! : queue[0]!;
    if (next === 'fail' || typeof next === 'object') {
      throw new CommandFailed(key, [key], { exitCode: 1, stderr: typeof next === 'object' ? next.fail : 'error: injected', timedOut: false });
    }
    return { stdout: next, stderr: '', exitCode: 0 };
  };
  return { runner: { catalog, run } as unknown as CommandRunner, ran };
}

describe('a CHAP network disk on libvirt', () => {
  const s = diskSecret('vm1', 'sdb');

  it('defines an ephemeral, private secret, sets its value by secret-set alone, and attaches XML that names it without the password', async () => {
    const h = host({ 'list-vms': ['vm1\n'], 'list-disks': [domain([networkDisk('sdb')])] });
    await new VmmAdapter('libvirt', h.runner, ['/srv/vbs']).attach('vm1', 'sdb', 'w', SOURCE);
    expect(h.ran.map((r) => r.action)).toEqual(['secret-define', 'secret-set', 'attach-iscsi']);
    const [define, set, attach] = h.ran;
    expect(define!.file).toBe(secretXml(s, 'vm1', 'sdb'));
    expect(define!.file).toContain("<secret ephemeral='yes' private='yes'>");
    expect(define!.file).toContain(`<usage type='iscsi'><target>vbs/vm1/sdb</target></usage>`);
    // virsh reads the value from a private file, which is gone once it has.
    expect(set!.params).toEqual({ secretId: s.uuid, path: expect.stringMatching(/^\//) });
    expect(set!.file).toBe(SECRET);
    expect(existsSync(set!.params.path!)).toBe(false);
    expect(attach!.file).toContain(`<auth username='${VOL}.host1'>`);
    expect(attach!.file).toContain(`<secret type='iscsi' usage='vbs/vm1/sdb'/>`);
    // The password is in no other file a command read, and in no command's values.
    for (const r of h.ran.filter((x) => x !== set)) expect(r.file ?? '').not.toContain(SECRET);
    for (const r of [define!, set!]) expect(Object.values(r.params)).not.toContain(SECRET);
    // attach-iscsi is handed the source's values, and neither its words nor a delivery use the password.
    expect(CommandCatalog.fromFile(DEFAULT_COMMANDS_FILE).uses('vmm.libvirt.attach-iscsi', 'chapSecret')).toBe(false);
  });

  it('undefines the secret when QEMU refuses the login (the attach is refused: nothing on the device)', async () => {
    const h = host({ 'attach-iscsi': ['fail'], 'list-vms': ['vm1\n'], 'list-disks': [domain([])] });
    await expect(new VmmAdapter('libvirt', h.runner, ['/srv/vbs']).attach('vm1', 'sdb', 'w', SOURCE)).rejects.toMatchObject({ code: 'OperationFailed' });
    expect(h.ran.map((r) => r.action)).toEqual(['secret-define', 'secret-set', 'attach-iscsi', 'list-disks', 'secret-undefine']);
    expect(h.ran.at(-1)!.params.secretId).toBe(s.uuid);
  });

  it('undefines it after the detach, and when the device holds nothing; never while another disk holds the device', async () => {
    let h = host({ 'list-vms': ['vm1\n'], 'list-disks': [domain([networkDisk('sdb')]), domain([])] });
    await new VmmAdapter('libvirt', h.runner, ['/srv/vbs']).detach('vm1', 'sdb', VOL, SOURCE);
    expect(h.ran.map((r) => r.action)).toEqual(['list-disks', 'detach', 'secret-undefine']);

    // A leftover of an attach that never finished: nothing on the device, the secret goes (one already gone is fine).
    h = host({ 'list-vms': ['vm1\n'], 'list-disks': [domain([])], 'secret-undefine': [{ fail: 'error: Failed to fetch secret\nerror: Secret not found: no secret with matching uuid' }] });
    await new VmmAdapter('libvirt', h.runner, ['/srv/vbs']).detach('vm1', 'sdb', VOL, SOURCE);
    expect(h.ran.map((r) => r.action)).toEqual(['list-disks', 'secret-undefine']);

    // A newer attach put another disk on the device: its secret (same VM, same device) stays.
    h = host({ 'list-vms': ['vm1\n'], 'list-disks': [domain([fileDisk('sdb')])] });
    await new VmmAdapter('libvirt', h.runner, ['/srv/vbs']).detach('vm1', 'sdb', VOL, SOURCE);
    expect(h.ran.map((r) => r.action)).toEqual(['list-disks']);

    // A file disk never had one: its detach runs no secret pattern.
    h = host({ 'list-vms': ['vm1\n'], 'list-disks': [domain([fileDisk('sdb')]), domain([])] });
    await new VmmAdapter('libvirt', h.runner, ['/srv/vbs']).detach('vm1', 'sdb', 'vol-00000000000000001', { kind: 'file', path: '/srv/vbs/vol-00000000000000001.img' });
    expect(h.ran.map((r) => r.action)).toEqual(['list-disks', 'detach']);

    // Any other failure to undefine fails the detach, which a retry finishes (the disk is gone by then).
    h = host({ 'list-vms': ['vm1\n'], 'list-disks': [domain([networkDisk('sdb')]), domain([])], 'secret-undefine': ['fail'] });
    await expect(new VmmAdapter('libvirt', h.runner, ['/srv/vbs']).detach('vm1', 'sdb', VOL, SOURCE)).rejects.toMatchObject({ code: 'OperationFailed' });
  });

  it('a listed network disk is still read as the same iscsi:// name (auth does not change it)', async () => {
    const h = host({ 'list-vms': ['vm1\n'], 'list-disks': [domain([networkDisk('sdb')])] });
    expect(await new VmmAdapter('libvirt', h.runner, ['/srv/vbs']).disksOf('vm1')).toEqual([{ device: 'sdb', target: URL, mode: 'w' }]);
  });

  it('refuses a CHAP source when no pattern can deliver the secret off argv, running nothing', async () => {
    const text = readFileSync(DEFAULT_COMMANDS_FILE, 'utf8').split('\n').filter((l) => !l.startsWith('vmm.libvirt.secret-')).join('\n');
    const catalog = CommandCatalog.fromText(text);
    const ran: string[] = [];
    const runner = { catalog, run: async (key: string) => (ran.push(key), { stdout: '', stderr: '', exitCode: 0 }) } as unknown as CommandRunner;
    await expect(new VmmAdapter('libvirt', runner, ['/srv/vbs']).attach('vm1', 'sdb', 'w', SOURCE)).rejects.toMatchObject({
      code: 'OperationFailed',
      message: expect.stringMatching(/requires CHAP.*does not deliver <chapSecret>/),
    });
    expect(ran).toEqual([]);
  });

  it('derives one secret per VM disk, from checked names only', () => {
    expect(diskSecret('vm1', 'sdb')).toEqual(s);
    expect(diskSecret('vm2', 'sdb').uuid).not.toBe(s.uuid);
    expect(diskSecret('vm1', 'sdc').uuid).not.toBe(s.uuid);
    expect(s.uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(() => diskSecret("vm1'/><x", 'sdb')).toThrow(expect.objectContaining({ code: 'InvalidParameterValue' }));
  });
});
