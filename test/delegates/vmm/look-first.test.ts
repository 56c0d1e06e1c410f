import { describe, expect, it } from 'vitest';
import { CommandCatalog } from '../../../src/commands/catalog.js';
import { CommandFailed, type CommandResult, type CommandRunner } from '../../../src/commands/runner.js';
import { DEFAULT_COMMANDS_FILE } from '../../../src/core/paths.js';
import { VmmAdapter } from '../../../src/delegates/vmm/adapter.js';

/**
 * The libvirt and qemu adapters' look-first logic with their runner injected:
 * real virsh and QEMU cannot be made to fail a listing once on cue, so the
 * runner plays the host, answering each pattern key from a script.
 */
const V1 = 'vol-00000000000000001';
const V2 = 'vol-00000000000000002';
const ROOT = '/srv/vbs';
const fileOf = (vol: string) => `${ROOT}/${vol}.img`;

const virshXml = (disks: { dev: string; file: string }[]) =>
  `<domain type='qemu'><name>vm1</name><devices>${disks.map((d) => `<disk type='file' device='disk'><source file='${d.file}'/><target dev='${d.dev}' bus='scsi'/></disk>`).join('')}</devices></domain>`;
const queryBlock = (disks: { dev: string; file: string }[]) =>
  JSON.stringify(disks.map((d) => ({ device: '', qdev: d.dev, inserted: { 'node-name': `vbs-${d.dev}`, drv: 'raw', ro: false, file: d.file } })));

const LISTINGS = { libvirt: { vms: 'vm1\n\n', disks: virshXml }, qemu: { vms: 'vm1\n', disks: queryBlock } } as const;


/** A runner that plays a host: `script[action]` answers (or fails) with its entries in order, the last one from then on; `ran` records the actions run. */
function hostRunner(adapter: string, script: Record<string, ((() => string) | 'fail')[]>): { runner: CommandRunner; ran: string[] } {
  const catalog = CommandCatalog.fromFile(DEFAULT_COMMANDS_FILE);
  const ran: string[] = [];
  const run = async (key: string): Promise<CommandResult> => {
    const action = key.slice(`vmm.${adapter}.`.length);
    ran.push(action);
    const queue = script[action] ?? [];
    const next = queue.length > 1 ? queue.shift()! : queue[0];
    if (next === undefined || next === 'fail') throw new CommandFailed(key, [key], { exitCode: 1, stderr: 'error: injected', timedOut: false });
    return { stdout: next(), stderr: '', exitCode: 0 };
  };
  return { runner: { catalog, run } as unknown as CommandRunner, ran };
}

describe.each(['libvirt', 'qemu'] as const)('the %s adapter looks before it detaches', (name) => {
  const { vms, disks } = LISTINGS[name];
  const v2OnSdb = () => disks([{ dev: 'sdb', file: fileOf(V2) }]);
  const src = { kind: 'file', path: fileOf(V1) };
  const ok = (): string => '';

  it('never detaches when the listing fails: a leftover detach of V1 does not pull V2 from the device', async () => {
    const { runner, ran } = hostRunner(name, { 'list-disks': ['fail', v2OnSdb], 'list-vms': [() => vms], detach: [ok] });
    const adapter = new VmmAdapter(name, runner, [ROOT]);
    await expect(adapter.detach('vm1', 'sdb', V1, src)).rejects.toMatchObject({ code: 'ServiceUnavailable' });
    expect(ran).not.toContain('detach');
    // Listed: the device holds V2, so V1 has nothing there to detach.
    await adapter.detach('vm1', 'sdb', V1, src);
    expect(ran).not.toContain('detach');
  });

  it('reads a detach that failed while the listing failed as unknown, and one that failed with the disk still there as refused', async () => {
    const v1OnSdb = () => disks([{ dev: 'sdb', file: fileOf(V1) }]);
    let h = hostRunner(name, { 'list-disks': [v1OnSdb, 'fail'], 'list-vms': [() => vms], detach: ['fail'] });
    await expect(new VmmAdapter(name, h.runner, [ROOT]).detach('vm1', 'sdb', V1, src)).rejects.toMatchObject({ code: 'ServiceUnavailable' });
    h = hostRunner(name, { 'list-disks': [v1OnSdb], 'list-vms': [() => vms], detach: ['fail'] });
    await expect(new VmmAdapter(name, h.runner, [ROOT]).detach('vm1', 'sdb', V1, src)).rejects.toMatchObject({ code: 'OperationFailed' });
  });

  it('takes a VM its listing does not show as holding nothing, and a VM listing that fails as unknown', async () => {
    let h = hostRunner(name, { 'list-disks': ['fail'], 'list-vms': [() => ''], detach: ['fail'] });
    await new VmmAdapter(name, h.runner, [ROOT]).detach('gone', 'sdb', V1, src);
    // A file disk never has a CHAP secret to forget (libvirt-secret.ts): nothing else runs.
    expect(h.ran).toEqual(['list-disks', 'list-vms']);
    h = hostRunner(name, { 'list-disks': ['fail'], 'list-vms': ['fail'], detach: [ok] });
    await expect(new VmmAdapter(name, h.runner, [ROOT]).detach('gone', 'sdb', V1, src)).rejects.toMatchObject({ code: 'ServiceUnavailable' });
    expect(h.ran).not.toContain('detach');
  });

  it('reads an attach that failed while the listing failed as unknown, never as refused', async () => {
    const h = hostRunner(name, { attach: ['fail'], 'list-disks': ['fail'], 'list-vms': [() => vms] });
    await expect(new VmmAdapter(name, h.runner, [ROOT]).attach('vm1', 'sdb', 'w', src)).rejects.toMatchObject({ code: 'ServiceUnavailable' });
  });
});

describe('the qemu adapter and a block node left without its device (vbs-qmp killed between blockdev-add and device_add)', () => {
  const src = { kind: 'file', path: fileOf(V1) };
  const orphan = () => JSON.stringify([{ qdev: 'sdb', inserted: { 'node-name': 'vbs-sdb', drv: 'raw', ro: false, file: fileOf(V1) }, 'vbs-orphan': true }]);

  it('never takes it for a finished attach: the outcome is unknown, so the caller undoes it', async () => {
    const h = hostRunner('qemu', { attach: ['fail'], 'list-disks': [orphan], 'list-vms': [() => 'vm1\n'] });
    await expect(new VmmAdapter('qemu', h.runner, [ROOT]).attach('vm1', 'sdb', 'w', src)).rejects.toMatchObject({
      code: 'ServiceUnavailable',
      message: expect.stringContaining('part of the disk was left'),
    });
  });

  it('has the detach (the undo) remove it', async () => {
    const h = hostRunner('qemu', { 'list-disks': [orphan, () => '[]'], 'list-vms': [() => 'vm1\n'], detach: [() => ''] });
    await new VmmAdapter('qemu', h.runner, [ROOT]).detach('vm1', 'sdb', V1, src);
    expect(h.ran).toEqual(['list-disks', 'detach']);
  });
});
