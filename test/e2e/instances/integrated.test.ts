import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VBS_SERVICE } from '../../../src/services/vbs.js';
import { SoapClient } from '../../../src/soap/client.js';
import { Site } from './site.js';

/**
 * Attach by instance id through real processes: the front, a volume
 * delegate, two simulated Xen hosts and the instance resolver service, with
 * the Nimbus and OpenStack stand-ins. Every resolver, every fault, and
 * ownership.
 */
interface Attachment {
  volumeId: string;
  vmmHost: string;
  vmId: string;
  instanceId?: string;
  device: string;
  status: string;
}
interface Volume {
  volumeId: string;
  status: string;
  attachments: Attachment[];
}

const ALICE_DN = '/O=Grid/OU=VBS/CN=alice';
const BOB_DN = '/O=Grid/OU=VBS/CN=bob';
const WEB = '6f1c0e2a-1b2c-4d3e-8f90-a1b2c3d4e5f6';

let site: Site;

beforeAll(async () => {
  site = await Site.create();
  // The Nimbus cloud: alice's i-0a1b2c3d is workspace 7 on node2, so the Xen domain wrksp-7 there.
  site.sim('node2', 'vm', 'create', 'wrksp-7');
  site.sim('node1', 'vm', 'create', 'wrksp-8');
  site.sim('cloud', 'nimbus', 'launch', 'i-0a1b2c3d', '7', 'node2', ALICE_DN);
  site.sim('cloud', 'nimbus', 'launch', 'i-00000008', '8', 'node1', ALICE_DN, '--state', 'Paused');
  site.sim('cloud', 'nimbus', 'launch', 'i-0000b0b0', '9', 'node1', BOB_DN);
  // OpenStack: alice's server web1 is the libvirt domain instance-0000000a on node1.
  site.sim('node1', 'vm', 'create', 'instance-0000000a');
  site.sim('cloud', 'nova', 'add', WEB, 'web1', 'node1', 'instance-0000000a', 'proj-alice');
  // No cloud: VMs found by name (scan), one name on both hosts.
  site.sim('node1', 'vm', 'create', 'lonely');
  site.sim('node1', 'vm', 'create', 'twin');
  site.sim('node2', 'vm', 'create', 'twin');
  site.sim('node2', 'vm', 'create', 'mapped-vm');
});

afterAll(async () => {
  await site?.destroy();
});

async function newVolume(user: 'alice' | 'bob' | 'admin' = 'alice'): Promise<string> {
  const v = await site.json<Volume>(user, 'create-volume', '1', '--wait');
  expect(v.status).toBe('available');
  return v.volumeId;
}

async function volume(id: string, user: 'alice' | 'bob' | 'admin' = 'alice'): Promise<Volume> {
  return (await site.json<Volume[]>(user, 'describe-volumes', id))[0]!;
}

describe('nimbus: vbs attach-volume <vol> i-0a1b2c3d xvdb', () => {
  it('attaches to the Nimbus VM on the node Nimbus put it on, records the instance id, and detaches by it', async () => {
    const vol = await newVolume();
    const a = await site.json<Attachment>('alice', 'attach-volume', vol, 'i-0a1b2c3d', 'xvdb', '--wait');
    expect(a).toMatchObject({ volumeId: vol, vmmHost: 'node2', vmId: 'wrksp-7', instanceId: 'i-0a1b2c3d', device: 'xvdb', status: 'attached' });
    // The disk is really on node2's wrksp-7, and nowhere on node1.
    expect(Object.keys(site.disks('node2'))).toContain('wrksp-7:xvdb');
    expect(Object.keys(site.disks('node1')).filter((k) => k.endsWith(':xvdb'))).toEqual([]);
    const table = await site.cli('alice', 'describe-volumes', vol);
    expect(table.stdout).toContain('i-0a1b2c3d/wrksp-7@node2:xvdb(w)');

    const d = await site.json<Attachment>('alice', 'detach-volume', vol, '--instance-id', 'i-0a1b2c3d', '--wait');
    expect(d).toMatchObject({ vmmHost: 'node2', vmId: 'wrksp-7', instanceId: 'i-0a1b2c3d' });
    expect(Object.keys(site.disks('node2'))).not.toContain('wrksp-7:xvdb');
    expect((await volume(vol)).status).toBe('available');
  });

  it('someone else\'s instance is unknown to the caller: InvalidInstanceID.NotFound', async () => {
    const vol = await newVolume('bob');
    const r = await site.cli('bob', 'attach-volume', vol, 'i-0a1b2c3d', 'xvdb');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^vbs: InvalidInstanceID\.NotFound: The instance ID 'i-0a1b2c3d' does not exist\. \(request id [0-9a-f-]+\)\n$/);
    expect((await volume(vol, 'bob')).status).toBe('available');
  });

  it('a Paused instance is IncorrectInstanceState; an unknown one InvalidInstanceID.NotFound', async () => {
    const vol = await newVolume();
    const paused = await site.cli('alice', 'attach-volume', vol, 'i-00000008', 'xvdb');
    expect(paused.code).toBe(1);
    expect(paused.stderr).toMatch(/^vbs: IncorrectInstanceState: The instance 'i-00000008' is Paused, not running/);
    const unknown = await site.cli('alice', 'attach-volume', vol, 'i-ffffffff', 'xvdb');
    expect(unknown.stderr).toMatch(/^vbs: InvalidInstanceID\.NotFound: /);
    expect(Object.keys(site.disks('node1'))).not.toContain('wrksp-8:xvdb');
    expect((await volume(vol)).attachments).toEqual([]);
  });
});

describe('openstack', () => {
  it('attaches to a server by its UUID on its compute host; SHUTOFF is IncorrectInstanceState; another project\'s is not found', async () => {
    const vol = await newVolume();
    const a = await site.json<Attachment>('alice', 'attach-volume', vol, WEB, 'xvdc', '--mode', 'r', '--wait');
    expect(a).toMatchObject({ vmmHost: 'node1', vmId: 'instance-0000000a', instanceId: WEB, status: 'attached' });
    expect(Object.keys(site.disks('node1'))).toContain('instance-0000000a:xvdc');
    await site.json('alice', 'detach-volume', vol, '--instance-id', WEB, '--wait');

    const bobs = await newVolume('bob');
    expect((await site.cli('bob', 'attach-volume', bobs, WEB, 'xvdc')).stderr).toMatch(/^vbs: InvalidInstanceID\.NotFound/);

    site.sim('cloud', 'nova', 'status', WEB, 'SHUTOFF');
    try {
      const r = await site.cli('alice', 'attach-volume', vol, WEB, 'xvdc');
      expect(r.stderr).toMatch(/^vbs: IncorrectInstanceState: The instance '6f1c0e2a-[0-9a-f-]+' is SHUTOFF/);
    } finally {
      site.sim('cloud', 'nova', 'status', WEB, 'ACTIVE');
    }
  });
});

describe('static', () => {
  it('attaches by an id from the operator\'s map, read again when the file changes', async () => {
    const vol = await newVolume();
    expect((await site.cli('alice', 'attach-volume', vol, 'i-5ca1ab1e', 'xvdd')).stderr).toMatch(/^vbs: InvalidInstanceID\.NotFound/);
    site.write('instances.json', { 'i-5ca1ab1e': { vmmHost: 'node2', vmId: 'mapped-vm', owner: 'alice' } });
    const a = await site.json<Attachment>('alice', 'attach-volume', vol, 'i-5ca1ab1e', 'xvdd', '--wait');
    expect(a).toMatchObject({ vmmHost: 'node2', vmId: 'mapped-vm', instanceId: 'i-5ca1ab1e', status: 'attached' });
    expect(Object.keys(site.disks('node2'))).toContain('mapped-vm:xvdd');
    await site.json('alice', 'detach-volume', vol, '--instance-id', 'i-5ca1ab1e', '--wait');
    // bob asking for alice's entry gets what an unknown id gets.
    const bobs = await newVolume('bob');
    expect((await site.cli('bob', 'attach-volume', bobs, 'i-5ca1ab1e', 'xvdd')).stderr).toMatch(/^vbs: InvalidInstanceID\.NotFound: The instance ID 'i-5ca1ab1e' does not exist\./);
  });
});

describe('ownership of instances (issue 17 item 7)', () => {
  // SOAP clients (no process per call); the CLI is driven once, for `vbs admin vm assign`.
  const soapAs = (name: 'user-alice' | 'user-bob' | 'admin') => {
    const cfg = JSON.parse(readFileSync(join(site.dir, 'client-alice.json'), 'utf8')) as { url: string };
    const pki = (f: string) => readFileSync(join(site.dir, 'pki', f));
    return new SoapClient({ def: VBS_SERVICE, url: cfg.url, tls: { key: pki(`${name}.key`), cert: pki(`${name}.crt`), ca: pki('ca.crt') } });
  };
  const outcome = (p: Promise<unknown>) => p.then(() => 'ok', (e: { code: string; message: string }) => `${e.code}: ${e.message}`);
  const notFound = (vm: string, host: string) => `InvalidInstanceID.NotFound: The VM '${vm}' on '${host}' does not exist.`;

  it("a user's host + VM form reaches only the VMs assigned to them, their own cloud instances' VMs included", async () => {
    const [alice, bob, admin] = [soapAs('user-alice'), soapAs('user-bob'), soapAs('admin')];
    try {
      const vol = await newVolume('bob');
      // alice's Nimbus VM, an unassigned VM, a VM that does not exist and an unknown host: one answer, nothing started.
      for (const [host, vm] of [['node2', 'wrksp-7'], ['node1', 'lonely'], ['node1', 'no-such-vm'], ['nowhere', 'vm1']] as const) {
        expect(await outcome(bob.call('AttachVolume', { volumeId: vol, vmmHost: host, vmId: vm, device: 'xvdb' }))).toBe(notFound(vm, host));
      }
      const alices = String(((await alice.call('CreateVolume', { size: 1 })).volume as { volumeId: string }).volumeId);
      expect(await outcome(alice.call('AttachVolume', { volumeId: alices, vmmHost: 'node2', vmId: 'wrksp-7', device: 'xvdb' }))).toBe(notFound('wrksp-7', 'node2'));
      expect((await volume(vol, 'bob')).attachments).toEqual([]);
      // Assigned by an administrator (`vbs admin vm assign`), it takes bob's volumes; taken back, it does not.
      const assigned = await site.json<{ vmmHost: string; vmId: string; user: string }[]>('admin', 'admin', 'vm', 'assign', 'node2', 'mapped-vm', 'bob');
      expect(assigned).toMatchObject([{ vmmHost: 'node2', vmId: 'mapped-vm', user: 'bob' }]);
      expect((await admin.call('DescribeVmAssignments', { user: 'bob' })).assignment).toMatchObject([{ vmmHost: 'node2', vmId: 'mapped-vm', user: 'bob' }]);
      expect((await bob.call('AttachVolume', { volumeId: vol, vmmHost: 'node2', vmId: 'mapped-vm', device: 'xvdq' })).attachment).toMatchObject({ vmId: 'mapped-vm', status: 'attached' });
      await bob.call('DetachVolume', { volumeId: vol });
      await admin.call('UnassignVm', { vmmHost: 'node2', vmId: 'mapped-vm' });
      expect(await outcome(bob.call('AttachVolume', { volumeId: vol, vmmHost: 'node2', vmId: 'mapped-vm', device: 'xvdr' }))).toBe(notFound('mapped-vm', 'node2'));
      expect(await outcome(bob.call('AssignVm', { vmmHost: 'node2', vmId: 'mapped-vm', user: 'bob' }))).toMatch(/^UnauthorizedOperation: /);
    } finally {
      for (const c of [alice, bob, admin]) c.close();
    }
  });

  it("an administrator attaches into any user's instance: Nimbus, OpenStack, the static map, and by host + VM", async () => {
    site.write('instances.json', { 'i-5ca1ab1e': { vmmHost: 'node2', vmId: 'mapped-vm', owner: 'alice' } });
    const admin = soapAs('admin');
    try {
      const vol = await newVolume('admin');
      const targets = [
        [{ instanceId: 'i-0a1b2c3d' }, { vmmHost: 'node2', vmId: 'wrksp-7' }],
        [{ instanceId: WEB }, { vmmHost: 'node1', vmId: 'instance-0000000a' }],
        [{ instanceId: 'i-5ca1ab1e' }, { vmmHost: 'node2', vmId: 'mapped-vm' }],
        [{ vmmHost: 'node1', vmId: 'lonely' }, { vmmHost: 'node1', vmId: 'lonely' }],
      ] as const;
      for (const [target, expected] of targets) {
        const a = await admin.call('AttachVolume', { volumeId: vol, ...target, device: 'xvds', mode: 'r' });
        expect(a.attachment).toMatchObject({ ...expected, status: 'attached' });
      }
      for (const [, at] of targets) await admin.call('DetachVolume', { volumeId: vol, vmmHost: at.vmmHost, vmId: at.vmId });
    } finally {
      admin.close();
    }
  });
});

describe('scan', () => {
  it('a VM\'s own name finds its host; a name on two hosts is refused, never guessed', async () => {
    // scan has no owners: alice finds only the VMs an administrator gave her.
    const vol = await newVolume();
    expect((await site.cli('alice', 'attach-volume', vol, 'lonely', 'xvde')).stderr).toMatch(/^vbs: InvalidInstanceID\.NotFound: The instance ID 'lonely' does not exist\./);
    const admin = new SoapClient({ def: VBS_SERVICE, url: (JSON.parse(readFileSync(join(site.dir, 'client-alice.json'), 'utf8')) as { url: string }).url, tls: { key: readFileSync(join(site.dir, 'pki', 'admin.key')), cert: readFileSync(join(site.dir, 'pki', 'admin.crt')), ca: readFileSync(join(site.dir, 'pki', 'ca.crt')) } });
    try {
      for (const [host, vm] of [['node1', 'lonely'], ['node1', 'twin'], ['node2', 'twin']]) await admin.call('AssignVm', { vmmHost: host, vmId: vm, user: 'alice' });
    } finally {
      admin.close();
    }
    const a = await site.json<Attachment>('alice', 'attach-volume', vol, 'lonely', 'xvde', '--wait');
    expect(a).toMatchObject({ vmmHost: 'node1', vmId: 'lonely', instanceId: 'lonely', status: 'attached' });
    await site.json('alice', 'detach-volume', vol, '--wait');
    const twin = await site.cli('alice', 'attach-volume', vol, 'twin', 'xvde');
    expect(twin.code).toBe(1);
    expect(twin.stderr).toMatch(/^vbs: InvalidParameterValue: .*node1 and node2 both run a VM named 'twin'/);
  });
});

describe('the request forms', () => {
  it('both forms, or neither, is InvalidParameterCombination (SOAP)', async () => {
    const vol = await newVolume();
    // The CLI sends one form only; the SOAP service refuses the mix itself.
    const { SoapClient } = await import('../../../src/soap/client.js');
    const { VBS_SERVICE } = await import('../../../src/services/vbs.js');
    const { readFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const pki = (f: string) => readFileSync(join(site.dir, 'pki', f));
    const cfg = JSON.parse(readFileSync(join(site.dir, 'client-alice.json'), 'utf8')) as { url: string };
    const c = new SoapClient({ def: VBS_SERVICE, url: cfg.url, tls: { key: pki('user-alice.key'), cert: pki('user-alice.crt'), ca: pki('ca.crt') } });
    try {
      const code = (input: object, op = 'AttachVolume') => c.call(op, { volumeId: vol, device: 'xvdf', ...input }).then(() => 'ok', (e: { code: string }) => e.code);
      expect(await code({ instanceId: 'i-0a1b2c3d', vmmHost: 'node2', vmId: 'wrksp-7' })).toBe('InvalidParameterCombination');
      expect(await code({})).toBe('InvalidParameterCombination');
      expect(await code({ instanceId: 'i-0a1b2c3d', vmId: 'wrksp-7' }, 'DetachVolume')).toBe('InvalidParameterCombination');
    } finally {
      c.close();
    }
    expect((await volume(vol)).attachments).toEqual([]);
  });
});

describe('the instance resolver service', () => {
  it('serves the front only: any other certificate is refused', async () => {
    const { SoapClient } = await import('../../../src/soap/client.js');
    const { INSTANCE_RESOLVER_SERVICE } = await import('../../../src/services/instance-resolver.js');
    const { readFileSync } = await import('node:fs');
    const front = JSON.parse(readFileSync(join(site.dir, 'front.json'), 'utf8')) as { instances: { resolverUrl: string } };
    const pki = (f: string) => readFileSync(join(site.dir, 'pki', f));
    const as = (name: string) =>
      new SoapClient({ def: INSTANCE_RESOLVER_SERVICE, url: front.instances.resolverUrl, tls: { key: pki(`${name}.key`), cert: pki(`${name}.crt`), ca: pki('ca.crt') } });
    const alice = as('user-alice');
    const admin = as('admin');
    const theFront = as('front');
    try {
      const ask = { instanceId: 'i-0a1b2c3d', owner: 'alice', resolver: 'nimbus' };
      for (const c of [alice, admin]) expect(await c.call('ResolveInstance', ask).then(() => 'answered', (e: { code: string }) => e.code)).toBe('UnauthorizedOperation');
      expect(await theFront.call('DescribeResolvers', {})).toEqual({ resolver: ['nimbus', 'openstack', 'static'] });
      expect(await theFront.call('ResolveInstance', ask)).toEqual({ found: true, vmmHost: 'node2', vmId: 'wrksp-7', state: 'Running', running: true });
    } finally {
      for (const c of [alice, admin, theFront]) c.close();
    }
  });
});

describe('a resolver service that is down', () => {
  it('is ServiceUnavailable with nothing started; the host form still works; back up, the instance form works', async () => {
    const vol = await newVolume();
    const before = site.workflows('AttachVolume');
    await site.stop('instance-resolver');
    try {
      const r = await site.cli('alice', 'attach-volume', vol, 'i-0a1b2c3d', 'xvdg');
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^vbs: ServiceUnavailable: InstanceResolver could not be reached\./);
      expect(site.workflows('AttachVolume')).toBe(before);
      expect(await volume(vol)).toMatchObject({ status: 'available', attachments: [] });
      expect(Object.keys(site.disks('node2'))).not.toContain('wrksp-7:xvdg');
    } finally {
      await site.start('instance-resolver');
    }
    const a = await site.json<Attachment>('alice', 'attach-volume', vol, 'i-0a1b2c3d', 'xvdg', '--wait');
    expect(a).toMatchObject({ vmmHost: 'node2', vmId: 'wrksp-7', status: 'attached' });
    await site.json('alice', 'detach-volume', vol, '--wait');
  });
});

describe('a crash during an attach by instance id', () => {
  it('is undone on the host the attach resolved to (the journal\'s), even when the cloud has moved the instance since', async () => {
    const vol = await newVolume();
    // node2's xm block-attach takes 4 s, once: the front is killed while the disk is going on.
    mkdirSync(join(site.dir, 'node2-sim', 'hang'), { recursive: true });
    writeFileSync(join(site.dir, 'node2-sim', 'hang', 'xm.block-attach.count'), '1\n');
    writeFileSync(join(site.dir, 'node2-sim', 'hang', 'xm.block-attach'), '4\n');
    const attach = site.cli('alice', 'attach-volume', vol, 'i-0a1b2c3d', 'xvdh');
    await eventually(() => site.stepState('AttachVolume', 4) === 'started', 'the attach to reach its AttachDisk step');
    await site.stop('front', true);
    expect((await attach).code).not.toBe(0);
    // The host finishes what it was asked: the disk is on wrksp-7 of node2, and no record says attached.
    await eventually(() => Object.keys(site.disks('node2')).includes('wrksp-7:xvdh'), 'the hung attach to land on node2');
    // Meanwhile Nimbus moves the instance: resolving it now would say node1.
    site.sim('node1', 'vm', 'create', 'wrksp-7');
    site.sim('cloud', 'nimbus', 'terminate', '7');
    site.sim('cloud', 'nimbus', 'launch', 'i-7e57e57e', '7', 'node1', ALICE_DN);
    await site.start('front');
    // Recovery (in the background, once the front listens) undid it from the journal: off node2's wrksp-7, and nothing done on node1.
    await eventually(() => !Object.keys(site.disks('node2')).includes('wrksp-7:xvdh'), 'the recovery to take the disk off node2');
    await eventually(() => site.log('front').includes('"msg":"recovered interrupted workflows"'), 'the recovery to end');
    expect(Object.keys(site.disks('node2'))).not.toContain('wrksp-7:xvdh');
    expect(Object.keys(site.disks('node1'))).not.toContain('wrksp-7:xvdh');
    expect(await volume(vol)).toMatchObject({ status: 'available', attachments: [] });
    expect(site.log('front')).toMatch(/"msg":"recovering workflow".*"kind":"AttachVolume"/);
  });
});

/** Polls a condition (each poll a real look at processes or files), bounded. */
async function eventually(check: () => boolean, what: string, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
