import { mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VbsError } from '../../src/core/errors.js';
import { OPENSTACK } from '../../src/resolver/clouds/openstack.js';
import { CommandResolver } from '../../src/resolver/command-resolver.js';
import { userOfDn } from '../../src/resolver/dn.js';
import { NimbusResolver } from '../../src/resolver/nimbus.js';
import { ScanResolver } from '../../src/resolver/scan.js';
import { StaticResolver } from '../../src/resolver/static.js';
import { ALICE_DN, BOB_DN, cloudSite, must, simRunner } from './helpers.js';

async function fault(p: Promise<unknown>): Promise<VbsError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof VbsError)) throw new Error(`expected a VbsError, got ${String(err)}`);
  return err;
}

describe('creator DN → VBS user', () => {
  it('is the DN\'s one CN, in either DN notation', () => {
    expect(userOfDn('/O=Grid/OU=VBS/CN=alice')).toBe('alice');
    expect(userOfDn('CN=alice, OU=VBS, O=Grid')).toBe('alice');
    expect(userOfDn('/O=Grid/OU=VBS')).toBeUndefined();
    expect(userOfDn('/O=Grid/CN=alice/CN=proxy')).toBeUndefined();
  });
});

describe('nimbus resolver (elastic.db + nimbus-admin stand-ins)', () => {
  let dir: string;
  let nimbus: NimbusResolver;
  beforeAll(() => {
    dir = cloudSite();
    must(dir, 'nimbus', 'launch', 'i-0a1b2c3d', '7', 'NODE2', ALICE_DN);
    must(dir, 'nimbus', 'launch', 'i-00000042', '8', 'node1', ALICE_DN, '--state', 'Paused');
    must(dir, 'nimbus', 'launch', 'i-0000b0b0', '9', 'node1', BOB_DN);
    must(dir, 'nimbus', 'launch', 'i-000dead0', '10', 'node1', ALICE_DN);
    must(dir, 'nimbus', 'terminate', '10');
    nimbus = new NimbusResolver(simRunner(dir), { elasticDb: join(dir, 'nimbus', 'elastic.db'), variant: 'sim' });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('i-… → workspace 7 → node2 (lowercased) and the Xen domain wrksp-7', async () => {
    expect(await nimbus.resolve('i-0a1b2c3d', 'alice')).toEqual({ vmmHost: 'node2', vmId: 'wrksp-7', state: 'Running', running: true, resolver: 'nimbus' });
  });

  it('someone else\'s instance, an unknown one, a terminated one and other id forms are unknown', async () => {
    expect(await nimbus.resolve('i-0a1b2c3d', 'bob')).toBeUndefined();
    expect(await nimbus.resolve('i-0a1b2c3d', 'root', true)).toMatchObject({ vmmHost: 'node2', vmId: 'wrksp-7' }); // an administrator: anyone's
    expect(await nimbus.resolve('i-0000b0b0', 'alice')).toBeUndefined();
    expect(await nimbus.resolve('i-ffffffff', 'alice')).toBeUndefined();
    expect(await nimbus.resolve('i-000dead0', 'alice')).toBeUndefined();
    expect(await nimbus.resolve('vm1', 'alice')).toBeUndefined();
  });

  it('a VM that is not Running is found but not running', async () => {
    expect(await nimbus.resolve('i-00000042', 'alice')).toMatchObject({ vmmHost: 'node1', vmId: 'wrksp-8', state: 'Paused', running: false });
  });

  it('maps node names to VBS host names when configured', async () => {
    const mapped = new NimbusResolver(simRunner(dir), { elasticDb: join(dir, 'nimbus', 'elastic.db'), variant: 'sim', nodeHosts: { NODE2: 'xen2.example.org' } });
    expect(await mapped.resolve('i-0a1b2c3d', 'alice')).toMatchObject({ vmmHost: 'xen2.example.org' });
  });

  it('an unreadable elastic.db is ServiceUnavailable, never "not found"', async () => {
    const lost = new NimbusResolver(simRunner(dir), { elasticDb: join(dir, 'nowhere.db'), variant: 'sim' });
    const err = await fault(lost.resolve('i-0a1b2c3d', 'alice'));
    expect(err.code).toBe('ServiceUnavailable');
    expect(err.message).toContain("Nimbus's elastic.db could not be read");
  });

  it('nimbus-admin failing is ServiceUnavailable', async () => {
    mkdirSync(join(dir, 'fail'), { recursive: true });
    writeFileSync(join(dir, 'fail', 'nimbus-admin.list'), 'Problem contacting the service: Connection refused\n');
    try {
      const err = await fault(nimbus.resolve('i-0a1b2c3d', 'alice'));
      expect(err.code).toBe('ServiceUnavailable');
      // The tool's own words stay in the resolver's log: they may name internal hosts.
      expect(err.message).toMatch(/nimbus instance resolver cannot answer now: resolver\.nimbus\.list(\.sim)? exited with 1/);
      expect(err.message).not.toContain('Connection refused');
    } finally {
      rmSync(join(dir, 'fail'), { recursive: true, force: true });
    }
  });
});

describe('openstack resolver (openstack server show -f json stand-in)', () => {
  const WEB = '6f1c0e2a-1b2c-4d3e-8f90-a1b2c3d4e5f6';
  const DB = '0b6e5f9a-3c4d-4e5f-8a9b-0c1d2e3f4a5b';
  const OTHER = '9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a';
  let dir: string;
  let openstack: CommandResolver;
  beforeAll(() => {
    dir = cloudSite();
    must(dir, 'nova', 'add', WEB, 'web1', 'Compute1', 'instance-0000000a', 'proj-a');
    must(dir, 'nova', 'add', DB, 'db1', 'compute2', 'instance-0000000b', 'proj-a', '--status', 'SHUTOFF');
    must(dir, 'nova', 'add', OTHER, 'theirs', 'compute2', 'instance-0000000c', 'proj-b');
    openstack = new CommandResolver(OPENSTACK, simRunner(dir), { accounts: { 'proj-a': ['alice'], 'proj-b': ['bob'] }, variant: 'sim' });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a server of the caller\'s project → its compute host and libvirt domain', async () => {
    expect(await openstack.resolve(WEB, 'alice')).toEqual({ vmmHost: 'compute1', vmId: 'instance-0000000a', state: 'ACTIVE', running: true, resolver: 'openstack' });
  });

  it('another project\'s server and an unknown one are unknown; SHUTOFF is not running', async () => {
    expect(await openstack.resolve(OTHER, 'alice')).toBeUndefined();
    expect(await openstack.resolve(WEB, 'bob')).toBeUndefined();
    expect(await openstack.resolve(WEB, 'root', true)).toMatchObject({ vmmHost: 'compute1', vmId: 'instance-0000000a' }); // an administrator: anyone's
    expect(await openstack.resolve('00000000-0000-4000-8000-000000000000', 'alice')).toBeUndefined();
    expect(await openstack.resolve(DB, 'alice')).toMatchObject({ state: 'SHUTOFF', running: false });
  });

  it('any other failure of the client is ServiceUnavailable', async () => {
    mkdirSync(join(dir, 'fail'), { recursive: true });
    writeFileSync(join(dir, 'fail', 'openstack.show'), 'Failed to discover available identity versions when contacting http://keystone:5000/v3.\n');
    try {
      const err = await fault(openstack.resolve(WEB, 'alice'));
      expect(err.code).toBe('ServiceUnavailable');
      expect(err.message).toMatch(/openstack instance resolver cannot answer now: .* exited with 1/);
      expect(err.message).not.toContain('keystone');
    } finally {
      rmSync(join(dir, 'fail'), { recursive: true, force: true });
    }
  });

  it('output without the admin-only fields is ServiceUnavailable (non-admin credentials)', () => {
    expect(() => OPENSTACK.parse(JSON.stringify({ id: WEB, status: 'ACTIVE', project_id: 'proj-a', hostId: 'abc' }))).toThrow(/OS-EXT-SRV-ATTR:host/);
  });
});

describe('static resolver (an operator\'s map file)', () => {
  let dir: string;
  let file: string;
  const write = (map: object, mtime: number) => {
    writeFileSync(file, JSON.stringify(map));
    utimesSync(file, mtime, mtime);
  };
  beforeAll(() => {
    dir = cloudSite();
    file = join(dir, 'instances.json');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('answers from the file, for its owner only, and reloads it when it changes', async () => {
    write({ 'i-0a1b2c3d': { vmmHost: 'Node2', vmId: 'wrksp-7', owner: 'alice' } }, 1_000_000);
    const r = new StaticResolver(file);
    expect(await r.resolve('i-0a1b2c3d', 'alice')).toEqual({ vmmHost: 'node2', vmId: 'wrksp-7', state: 'running', running: true, resolver: 'static' });
    expect(await r.resolve('i-0a1b2c3d', 'bob')).toBeUndefined();
    expect(await r.resolve('i-0a1b2c3d', 'root', true)).toMatchObject({ vmmHost: 'node2', vmId: 'wrksp-7' }); // an administrator: anyone's
    expect(await r.resolve('i-00000001', 'alice')).toBeUndefined();
    write({ 'i-0a1b2c3d': { vmmHost: 'node1', vmId: 'wrksp-7', owner: 'alice', state: 'stopped' } }, 1_000_100);
    expect(await r.resolve('i-0a1b2c3d', 'alice')).toMatchObject({ vmmHost: 'node1', running: false, state: 'stopped' });
  });

  it('keeps the last good map when the file turns invalid; with none, ServiceUnavailable', async () => {
    write({ vm9: { vmmHost: 'node1', vmId: 'vm9', owner: 'alice' } }, 2_000_000);
    const r = new StaticResolver(file);
    expect(await r.resolve('vm9', 'alice')).toMatchObject({ vmId: 'vm9' });
    writeFileSync(file, '{ "vm9": { "vmmHost": ');
    utimesSync(file, 2_000_100, 2_000_100);
    expect(await r.resolve('vm9', 'alice')).toMatchObject({ vmId: 'vm9' });
    expect((await fault(new StaticResolver(file).resolve('vm9', 'alice'))).code).toBe('ServiceUnavailable');
    expect((await fault(new StaticResolver(join(dir, 'missing.json')).resolve('vm9', 'alice'))).code).toBe('ServiceUnavailable');
  });
});

describe('scan resolver (every VMM delegate\'s ListVms)', () => {
  const hosts = (lists: Record<string, string[] | Error>) => ({
    vmmHostNames: () => Object.keys(lists),
    vmmDelegate: (host: string) => ({
      call: async (op: string) => {
        expect(op).toBe('ListVms');
        const l = lists[host]!;
        if (l instanceof Error) throw l;
        return { vmId: l };
      },
    }),
  });

  it('finds the one host running a VM of that name', async () => {
    const scan = new ScanResolver(hosts({ node1: ['vm1', 'vm2'], node2: ['wrksp-7'] }));
    expect(await scan.resolve('wrksp-7', 'admin', true)).toEqual({ vmmHost: 'node2', vmId: 'wrksp-7', state: 'listed', running: true, resolver: 'scan' });
    expect(await scan.resolve('vm3', 'admin', true)).toBeUndefined();
  });

  it('two hosts claiming one name is a fault, never a guess', async () => {
    const err = await fault(new ScanResolver(hosts({ node1: ['vm1'], node2: ['vm1'] })).resolve('vm1', 'admin', true));
    expect(err.code).toBe('InvalidParameterValue');
    expect(err.message).toContain('node1 and node2');
  });

  it('a host that does not answer is ServiceUnavailable: the VM might be there', async () => {
    const down = new VbsError('ServiceUnavailable', 'VmmDelegate at 127.0.0.1:1 could not be reached (ECONNREFUSED).');
    const err = await fault(new ScanResolver(hosts({ node1: ['vm1'], node2: down })).resolve('vm1', 'admin', true));
    expect(err.code).toBe('ServiceUnavailable');
    expect(err.message).toContain('node2');
  });

  it('finds for a user only the VMs assigned to them, asking only the hosts that assigned them', async () => {
    const assigned = { hostsOf: (vm: string, owner: string) => (owner === 'alice' && vm === 'vm1' ? ['node2'] : []) };
    const down = new VbsError('ServiceUnavailable', 'VmmDelegate at 127.0.0.1:1 could not be reached (ECONNREFUSED).');
    const scan = new ScanResolver(hosts({ node1: ['vm1', 'vm2'], node2: ['vm1'], node3: down }), assigned);
    // node1's vm1 is not hers: no twin fault naming other tenants' hosts, and node3 being down does not matter.
    expect(await scan.resolve('vm1', 'alice')).toMatchObject({ vmmHost: 'node2', vmId: 'vm1' });
    expect(await scan.resolve('vm2', 'alice')).toBeUndefined();
    expect(await scan.resolve('vm1', 'bob')).toBeUndefined();
    // Without assignments, scan is the administrators' only.
    expect(await new ScanResolver(hosts({ node1: ['vm1'] })).resolve('vm1', 'alice')).toBeUndefined();
  });
});
