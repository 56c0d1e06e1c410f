import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommandCatalog } from '../../../src/commands/catalog.js';
import { CommandRunner } from '../../../src/commands/runner.js';
import { DEFAULT_COMMANDS_FILE } from '../../../src/core/paths.js';
import { cephUserOf, osdCapsFor, secretUuidOf } from '../../../src/core/rbd-export.js';
import { FIXED_PARAMS, VmmAdapter } from '../../../src/delegates/vmm/adapter.js';
import { useCephCluster, type CephCluster } from '../../ceph/cluster.js';
import { hasPattern, writePattern } from '../../delegates/volume/rbd-helpers.js';
import { json, volume, type Volume } from '../../system/cli.js';
import { LibvirtDaemons, LibvirtDomain, QemuVm, requireRoot, virsh } from '../../system/host.js';
import { ROOT, startVbs, type Vbs } from '../harness.js';

/**
 * Attaching rbd volumes without iSCSI (issue 19), on the real test cluster,
 * real libvirt and real QEMU (TCG, paused, no guest, virtio-scsi): through
 * `vbs up --backend rbd --vmm libvirt` and the CLI, and the qemu adapter's
 * vbs-qmp against a QEMU of its own. Each export is a cephx client of one
 * (volume, host) whose caps admit that image only; its key reaches the
 * hypervisor as a libvirt secret (or a QMP secret object) and never a log.
 * Every step of the attach is failed in turn (a wrapper in front of its
 * command) and leaves nothing behind.
 */
const run = promisify(execFile);
const WRAPPER = join(ROOT, 'test', 'delegates', 'volume', 'fault-wrapper.mjs');
const HOST = 'localhost';
/** The commands each attach step runs, which the wrapper can break. */
const WRAPPED = ['volume.rbd.auth-key', 'vmm.libvirt.rbd.secret-define', 'vmm.libvirt.rbd.secret-set', 'vmm.libvirt.attach-rbd'] as const;

let c: CephCluster;
let dir: string;
let faults: string;
let nbdDir: string;
let daemons: LibvirtDaemons | undefined;
let vbs: Vbs | undefined;
const doms: LibvirtDomain[] = [];
const dom = (n: number) => `vbs-rbd-${process.pid}-${n}`;
const keysSeen = new Set<string>();

beforeAll(async () => {
  requireRoot();
  c = await useCephCluster();
  // A cluster started by an older ceph-up.sh: give client.vbs the caps exports need (as ceph-up.sh now does).
  await c.ceph(
    'auth', 'caps', 'client.vbs',
    'mon', 'profile rbd, allow command "auth get-or-create-key" with entity prefix client.vbs., allow command "auth caps" with entity prefix client.vbs., allow command "auth rm" with entity prefix client.vbs.',
    'osd', 'profile rbd', 'mgr', 'profile rbd',
  );
  dir = mkdtempSync(join(tmpdir(), 'vbs-rbd-attach-'));
  chmodSync(dir, 0o711);
  faults = join(dir, 'faults');
  nbdDir = join(dir, 'nbd');
  mkdirSync(faults);
  mkdirSync(nbdDir);
  chmodSync(nbdDir, 0o777);
  const catalog = CommandCatalog.fromFile(DEFAULT_COMMANDS_FILE);
  const props = join(dir, 'commands.properties');
  writeFileSync(props, `${readFileSync(DEFAULT_COMMANDS_FILE, 'utf8')}\n${WRAPPED.map((k) => `${k} = ${process.execPath} ${WRAPPER} ${faults} ${k} ${catalog.pattern(k).text}`).join('\n')}\n`);
  daemons = await LibvirtDaemons.ensure(dir);
  for (const n of [1, 2]) doms.push(await LibvirtDomain.start(dom(n)));
  vbs = await startVbs(['--backend', 'rbd', '--ceph-conf', c.conf, '--ceph-pool', c.pool, '--ceph-keyring', c.vbsKeyring, '--vmm', 'libvirt', '--commands', props], join(dir, 'data'));
}, 600_000);

afterAll(async () => {
  await vbs?.stop(true);
  for (const d of doms) await d.remove();
  await daemons?.stop();
  await c?.release();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function newVolume(label: string): Promise<string> {
  return (await json<Volume>(vbs!, 'create-volume', '1', label, '--wait')).volumeId;
}

/** The export's cephx client as the cluster has it: its key, or undefined when there is none. */
async function clientKey(volumeId: string): Promise<string | undefined> {
  try {
    const key = (await c.ceph('auth', 'get-key', `client.${cephUserOf(volumeId, HOST)}`)).trim();
    keysSeen.add(key);
    return key;
  } catch {
    return undefined;
  }
}

async function secrets(): Promise<string> {
  return virsh('secret-list');
}

async function watchers(volumeId: string): Promise<unknown[]> {
  return (JSON.parse(await c.rbd('status', '--format', 'json', `${c.pool}/${volumeId}`)) as { watchers: unknown[] }).watchers;
}

/** The <disk> of a domain's live XML on a target device. */
async function diskXml(d: LibvirtDomain, dev: string): Promise<string | undefined> {
  return (await d.xml()).split('<disk ').find((x) => x.includes(`<target dev='${dev}'`))?.split('</disk>')[0];
}

/** Nothing of the volume's export is left: no cephx client, no libvirt secret, nobody has the image open. */
async function expectNoExport(volumeId: string): Promise<void> {
  expect(await clientKey(volumeId)).toBeUndefined();
  expect(await secrets()).not.toContain(secretUuidOf(cephUserOf(volumeId, HOST)));
  expect(await watchers(volumeId)).toEqual([]);
}

async function expectCheckClean(): Promise<void> {
  const r = await vbs!.cli('admin', 'check');
  expect({ code: r.code, out: r.stdout + r.stderr }).toEqual({ code: 0, out: expect.stringContaining('No differences') });
}

describe('rbd volumes attached through libvirt', { timeout: 180_000 }, () => {
  it('attaches read-write as a network disk with its own cephx client, serves the image both ways, and detaches leaving nothing', async () => {
    const id = await newVolume('rbd-rw');
    await writePattern(c, id, 0x33, 0);
    await json(vbs!, 'attach-volume', id, HOST, dom(1), 'sdb', '--wait');

    const disk = (await diskXml(doms[0]!, 'sdb'))!;
    expect(disk).toMatch(/^type='network'/);
    expect(disk).toContain(`<source protocol='rbd' name='${c.pool}/${id}'`);
    expect(disk).toMatch(/<host name='127\.0\.0\.1' port='[0-9]+'\/>/);
    expect(disk).toContain(`<auth username='${cephUserOf(id, HOST)}'>`);
    expect(disk).toContain(`<secret type='ceph' uuid='${secretUuidOf(cephUserOf(id, HOST))}'/>`);
    expect(disk).not.toContain('<readonly/>');
    const key = await clientKey(id);
    expect(key).toBeDefined();
    expect(disk).not.toContain(key);
    expect(await secrets()).toContain(secretUuidOf(cephUserOf(id, HOST)));
    expect(await watchers(id)).toHaveLength(1);

    // The export's client opens this image and no other of the pool.
    const other = await newVolume('rbd-other');
    const keyring = join(dir, 'client.keyring');
    writeFileSync(keyring, `[client.${cephUserOf(id, HOST)}]\n\tkey = ${key}\n`, { mode: 0o600 });
    const open = (image: string) =>
      run('qemu-io', ['-f', 'raw', '-r', '-c', 'read 0 512', `rbd:${c.pool}/${image}:id=${cephUserOf(id, HOST)}:keyring=${keyring}:conf=${c.conf}`], { timeout: 60_000 }).then(
        () => 'opened',
        (e: { stderr?: string }) => e.stderr ?? 'failed',
      );
    expect(await open(id)).toBe('opened');
    expect(await open(other)).toMatch(/Operation not permitted/);
    rmSync(keyring);
    await json(vbs!, 'delete-volume', other);

    // The VM reads what was written through rbd, and what it writes is in the image.
    expect((await doms[0]!.read('sdb', nbdDir, 512)).every((b) => b === 0x33)).toBe(true);
    expect(await doms[0]!.qemuIo('sdb', 'write -P 0x5a 1048576 65536')).not.toMatch(/error|fail/i);
    await doms[0]!.qemuIo('sdb', 'flush');
    expect(await hasPattern(c, id, 0x5a, 1048576)).toBe(true);
    await expectCheckClean();

    await json(vbs!, 'detach-volume', id, '--wait');
    expect(await diskXml(doms[0]!, 'sdb')).toBeUndefined();
    await expectNoExport(id);
    expect(await volume(vbs!, id)).toMatchObject({ status: 'available', attachments: [] });
    await json(vbs!, 'delete-volume', id);
  });

  it('shares a volume read-only on two domains through one client and one secret, removed with the last detach', async () => {
    const id = await newVolume('rbd-ro');
    await writePattern(c, id, 0x44, 0);
    for (const n of [1, 2]) await json(vbs!, 'attach-volume', id, HOST, dom(n), 'sdc', '--mode', 'r', '--wait');
    for (const d of doms) {
      expect(await diskXml(d, 'sdc')).toContain('<readonly/>');
      expect((await d.read('sdc', nbdDir, 512)).every((b) => b === 0x44)).toBe(true);
      expect(await d.qemuIo('sdc', 'write -P 0 0 512')).toMatch(/Block node is read-only/);
    }
    expect(await watchers(id)).toHaveLength(2);
    await expectCheckClean();

    await json(vbs!, 'detach-volume', id, '--vmm-host', HOST, '--vm-id', dom(1), '--wait');
    expect(await diskXml(doms[0]!, 'sdc')).toBeUndefined();
    // The other domain still reads through the same client and secret.
    expect(await clientKey(id)).toBeDefined();
    expect(await secrets()).toContain(secretUuidOf(cephUserOf(id, HOST)));
    expect((await doms[1]!.read('sdc', nbdDir, 512)).every((b) => b === 0x44)).toBe(true);

    await json(vbs!, 'detach-volume', id, '--wait');
    await expectNoExport(id);
    await json(vbs!, 'delete-volume', id);
  });

  for (const key of WRAPPED) {
    it(`rolls back an attach whose ${key} fails: no disk, no secret, no client, the volume available`, async () => {
      const id = await newVolume(`rbd-fail-${key}`);
      const before = await doms[0]!.xml();
      writeFileSync(join(faults, key), 'fail');
      const r = await vbs!.cli('attach-volume', id, HOST, dom(1), 'sdd', '--wait');
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`${key} exited with 1`);
      expect(await doms[0]!.xml()).toBe(before);
      await expectNoExport(id);
      expect(await volume(vbs!, id)).toMatchObject({ status: 'available', attachments: [] });
      if (key === WRAPPED.at(-1)) await expectCheckClean();
      await json(vbs!, 'delete-volume', id);
    });
  }

  it('never writes a key to a log, the audit trail or the domain logs', async () => {
    expect(keysSeen.size).toBeGreaterThan(0);
    const files: string[] = [];
    const walk = (d: string) => {
      for (const f of readdirSync(d)) {
        const p = join(d, f);
        if (statSync(p).isDirectory()) walk(p);
        else files.push(p);
      }
    };
    walk(vbs!.dir);
    for (const n of [1, 2]) files.push(`/var/log/libvirt/qemu/${dom(n)}.log`);
    let read = 0;
    for (const f of files) {
      let text: Buffer;
      try {
        text = readFileSync(f);
      } catch {
        continue;
      }
      // The front's database (and its WAL) holds the exports it must be able to undo: only its owner reads it, as for CHAP secrets.
      if (/\/vbs\.db(?:-wal|-shm|-journal)?$/.test(f)) {
        expect(statSync(f).mode & 0o077, f).toBe(0);
        continue;
      }
      read++;
      for (const key of keysSeen) expect(text.includes(key), f).toBe(false);
    }
    expect(read).toBeGreaterThan(3);
  });
});

describe('rbd volumes attached through QMP (the qemu adapter)', { timeout: 120_000 }, () => {
  it('blockdev-add driver=rbd with the key as a secret object: read-write, read-only, detached', async () => {
    const qmpDir = join(dir, 'qmp');
    mkdirSync(qmpDir);
    const vm = await QemuVm.start(qmpDir, 'vm1');
    try {
      const catalog = CommandCatalog.fromFile(DEFAULT_COMMANDS_FILE);
      const logged: string[] = [];
      const runner = new CommandRunner(catalog, { fixed: { ...FIXED_PARAMS, stateDir: qmpDir }, onRun: (_k, argv) => void logged.push(argv.join(' ')) });
      const adapter = new VmmAdapter('qemu', runner, []);
      expect(adapter.sourceKinds()).toContain('rbd');

      // The export as the volume delegate makes it: a client for this image alone.
      const id = await newVolume('rbd-qmp');
      await writePattern(c, id, 0x66, 0);
      const info = JSON.parse(await c.rbd('info', '--format', 'json', `${c.pool}/${id}`)) as { id: string };
      const cephUser = cephUserOf(id, 'qmp-host');
      const cephKey = (await c.ceph('auth', 'get-or-create-key', `client.${cephUser}`, 'mon', 'profile rbd', 'osd', osdCapsFor(c.pool, { name: id, id: info.id }, []))).trim();
      const monitors = /v1:([0-9.]+:[0-9]+)/.exec(readFileSync(c.conf, 'utf8'))![1]!;
      const source = { kind: 'rbd', pool: c.pool, image: id, monitors, cephUser, cephKey };

      await adapter.attach('vm1', 'sdb', 'w', source as never);
      expect(await adapter.disksOf('vm1')).toEqual([{ device: 'sdb', target: `rbd:${c.pool}/${id}`, mode: 'w' }]);
      expect((await vm.read('sdb', nbdDir, 512)).every((b) => b === 0x66)).toBe(true);
      expect(await vm.qemuIo('sdb', 'write -P 0x77 65536 65536')).not.toMatch(/error|fail/i);
      await vm.qemuIo('sdb', 'flush');
      expect(await hasPattern(c, id, 0x77, 65536)).toBe(true);
      // VBS has the volume detached, yet a client has it open: `vbs admin check` says so.
      const check = await vbs!.cli('admin', 'check');
      expect(check.code).not.toBe(0);
      expect(check.stdout + check.stderr).toContain(`${id} is open on the Ceph cluster`);
      expect(check.stdout + check.stderr).toContain('orphan-export');
      // Attaching again the same way is done already.
      await adapter.attach('vm1', 'sdb', 'w', source as never);
      await adapter.detach('vm1', 'sdb', id, source as never);
      expect(await adapter.disksOf('vm1')).toEqual([]);
      expect(await watchers(id)).toEqual([]);

      await adapter.attach('vm1', 'sdc', 'r', source as never);
      expect(await adapter.disksOf('vm1')).toEqual([{ device: 'sdc', target: `rbd:${c.pool}/${id}`, mode: 'r' }]);
      expect(await vm.qemuIo('sdc', 'write -P 0 0 512')).toMatch(/read-only/);
      await adapter.detach('vm1', 'sdc', id, source as never);
      expect(await watchers(id)).toEqual([]);
      await expectCheckClean();
      // The secret object went with the disk.
      const objects = (await vm.qmp((q) => q.execute('qom-list', { path: '/objects' }))) as { name: string }[];
      expect(objects.map((o) => o.name).filter((n) => n.startsWith('vbs-'))).toEqual([]);
      expect(logged.join('\n')).not.toContain(cephKey);
      await c.ceph('auth', 'rm', `client.${cephUser}`);
      await json(vbs!, 'delete-volume', id);
    } finally {
      await vm.stop();
    }
  });
});
