import { execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PkiStore } from '../../src/pki/store.js';
import { ROOT, VBS_BIN } from '../e2e/harness.js';
import { serve, stopChild } from '../e2e/serve.js';
import { requireRoot } from './host.js';

/**
 * VBS across a real network: the front, the volume delegate and two VMM
 * delegates each run `vbs serve` in a network namespace of their own, joined
 * by a bridge in another namespace (all made here, on a 10.250.x.0/24 of
 * their own), and the CLI runs in a fifth. Every call crosses veth links with
 * mutual TLS on the namespaces' addresses; nothing touches the root
 * namespace's network. The VMM hosts are simulated (adapter sim); the volume
 * files are on the file system the namespaces share, as on a shared mount.
 */
const run = promisify(execFile);
const HOSTSIM = join(ROOT, 'dist', 'sim', 'hostsim.js');
const SUBNET = `10.250.${100 + (process.pid % 100)}`;
const tag = `vbs${process.pid}`;
const NODES = { front: 1, volume: 2, h1: 3, h2: 4, client: 5 } as const;
type Node = keyof typeof NODES;
const ns = (n: Node | 'br') => `${tag}-${n}`;
const ip = (n: Node) => `${SUBNET}.${NODES[n]}`;

let dir: string;
const made: string[] = [];
const children: ChildProcess[] = [];

function ipCmd(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function makeNetwork(): void {
  for (const n of ['br', ...Object.keys(NODES)] as (Node | 'br')[]) {
    ipCmd('netns', 'add', ns(n));
    made.push(ns(n));
    ipCmd('-n', ns(n), 'link', 'set', 'lo', 'up');
  }
  ipCmd('-n', ns('br'), 'link', 'add', 'br0', 'type', 'bridge');
  ipCmd('-n', ns('br'), 'link', 'set', 'br0', 'up');
  for (const [n, i] of Object.entries(NODES) as [Node, number][]) {
    // Both ends made from inside the bridge's namespace: nothing in the root one.
    ipCmd('-n', ns('br'), 'link', 'add', `p${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns(n));
    ipCmd('-n', ns('br'), 'link', 'set', `p${i}`, 'master', 'br0');
    ipCmd('-n', ns('br'), 'link', 'set', `p${i}`, 'up');
    ipCmd('-n', ns(n), 'addr', 'add', `${ip(n)}/24`, 'dev', 'eth0');
    ipCmd('-n', ns(n), 'link', 'set', 'eth0', 'up');
  }
}

/** `vbs serve` inside a namespace (`ip netns exec` execs it: the child is the service itself). */
function serveIn(n: Node, role: string, config: string): Promise<string> {
  mkdirSync(join(dir, 'logs'), { recursive: true });
  return serve(role, config, dir, children, `${role}-${n}`, ['ip', 'netns', 'exec', ns(n)]);
}

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run('ip', ['netns', 'exec', ns('client'), process.execPath, VBS_BIN, '--config', join(dir, 'client.json'), ...args], { timeout: 120_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

async function json<T>(...args: string[]): Promise<T> {
  const r = await cli('--json', ...args);
  expect(r.code, `vbs ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout) as T;
}

const simDisks = (host: 'h1' | 'h2') =>
  (JSON.parse(execFileSync(process.execPath, [HOSTSIM, '--state', join(dir, `sim-${host}`), 'vm', 'list'], { encoding: 'utf8' })) as { name: string; disks: { dev: string; mode: string; target: string }[] }[]).flatMap((vm) =>
    vm.disks.map((d) => ({ vm: vm.name, dev: d.dev, mode: d.mode, target: d.target })),
  );

beforeAll(async () => {
  requireRoot();
  dir = mkdtempSync(join(tmpdir(), 'vbs-sys-netns-'));
  mkdirSync(join(dir, 'volumes'));
  makeNetwork();

  const pki = new PkiStore(join(dir, 'pki'));
  pki.ensureCa();
  pki.ensureIdentity('front', { commonName: 'vbs-front', use: 'server+client', hosts: [ip('front')] });
  pki.ensureIdentity('volume', { commonName: 'vbs-volume-delegate', use: 'server', hosts: [ip('volume')] });
  for (const h of ['h1', 'h2'] as const) pki.ensureIdentity(h, { commonName: `vbs-vmm-${h}`, use: 'server', hosts: [ip(h)] });
  pki.ensureIdentity('admin', { commonName: 'admin', use: 'client' });
  const tls = (name: string) => ({ key: `pki/${name}.key`, cert: `pki/${name}.crt`, ca: 'pki/ca.crt' });
  const write = (file: string, value: object) => writeFileSync(join(dir, file), JSON.stringify(value, null, 2));

  write('volume.json', { role: 'volume-delegate', name: 'store', listen: { host: ip('volume'), port: 8444 }, tls: tls('volume'), backend: { type: 'file', root: 'volumes' } });
  for (const h of ['h1', 'h2'] as const) {
    execFileSync(process.execPath, [HOSTSIM, '--state', join(dir, `sim-${h}`), 'vm', 'create', h === 'h1' ? 'vm1' : 'vm2']);
    write(`${h}.json`, { role: 'vmm-delegate', hostName: h, adapter: 'sim', listen: { host: ip(h), port: 8445 }, tls: tls(h), volumeRoots: ['volumes'], simState: `sim-${h}` });
  }
  write('front.json', {
    role: 'front',
    listen: { host: ip('front'), port: 8443 },
    tls: tls('front'),
    database: 'vbs.db',
    volumeDelegates: [{ name: 'store', url: `https://${ip('volume')}:8444/volume-delegate` }],
    vmmHosts: (['h1', 'h2'] as const).map((h) => ({ name: h, url: `https://${ip(h)}:8445/vmm-delegate` })),
  });
  write('client.json', { url: `https://${ip('front')}:8443/vbs`, ...tls('admin') });

  await serveIn('volume', 'volume-delegate', join(dir, 'volume.json'));
  await serveIn('h1', 'vmm-delegate', join(dir, 'h1.json'));
  await serveIn('h2', 'vmm-delegate', join(dir, 'h2.json'));
  await serveIn('front', 'front', join(dir, 'front.json'));
});

afterAll(async () => {
  for (const c of [...children].reverse()) await stopChild(c);
  for (const n of made.reverse()) {
    try {
      ipCmd('netns', 'del', n);
    } catch {
      // already gone
    }
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('VBS across network namespaces', { timeout: 180_000 }, () => {
  it('each service listens only on its own namespace\'s address', () => {
    const listening = (n: Node) => execFileSync('ip', ['netns', 'exec', ns(n), 'ss', '-Hltn'], { encoding: 'utf8' });
    expect(listening('front')).toContain(`${ip('front')}:8443`);
    expect(listening('volume')).toContain(`${ip('volume')}:8444`);
    expect(listening('h1')).toContain(`${ip('h1')}:8445`);
    expect(listening('client').trim()).toBe('');
  });

  it('shares a volume read-only on VMs of two hosts, then detaches and deletes it', async () => {
    const vol = await json<{ volumeId: string }>('create-volume', '1', 'across hosts', '--wait');
    await json('attach-volume', vol.volumeId, 'h1', 'vm1', 'xvdb', '--mode', 'r', '--wait');
    await json('attach-volume', vol.volumeId, 'h2', 'vm2', 'xvdc', '--mode', 'r', '--wait');
    const file = join(dir, 'volumes', `${vol.volumeId}.img`);
    expect(simDisks('h1')).toEqual([{ vm: 'vm1', dev: 'xvdb', mode: 'r', target: file }]);
    expect(simDisks('h2')).toEqual([{ vm: 'vm2', dev: 'xvdc', mode: 'r', target: file }]);
    const [v] = await json<{ status: string; attachments: { vmmHost: string }[] }[]>('describe-volumes', vol.volumeId);
    expect(v!.status).toBe('in-use');
    expect(v!.attachments.map((a) => a.vmmHost).sort()).toEqual(['h1', 'h2']);
    const check = await cli('admin', 'check');
    expect(check.code, check.stdout + check.stderr).toBe(0);

    // A read-write attachment elsewhere is refused while it is shared.
    const rw = await cli('attach-volume', vol.volumeId, 'h1', 'vm1', 'xvdd');
    expect(rw.code).toBe(1);
    expect(rw.stderr).toMatch(/VolumeInUse/);

    await json('detach-volume', vol.volumeId, '--vmm-host', 'h1', '--vm-id', 'vm1', '--wait');
    expect(simDisks('h1')).toEqual([]);
    await json('detach-volume', vol.volumeId, '--wait');
    expect(simDisks('h2')).toEqual([]);
    await json('delete-volume', vol.volumeId);
  });
});
