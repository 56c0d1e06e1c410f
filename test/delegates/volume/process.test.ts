import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { VbsError } from '../../../src/core/errors.js';
import { PkiStore } from '../../../src/pki/store.js';
import { VOLUME_DELEGATE_SERVICE } from '../../../src/services/volume-delegate.js';
import { SoapClient } from '../../../src/soap/client.js';
import type { Record as XmlRecord } from '../../../src/soap/xml.js';
import { cleanupDirs, eventually, GiB, IQN_PREFIX, lvNames, ROOT, simSite, tempDir, type Site } from './helpers.js';

/**
 * The Volume Delegate with the lvm-iscsi back end as a real process (`vbs
 * serve volume-delegate`), driven over SOAP with the front's certificate.
 */
const children: ChildProcess[] = [];
const clients: SoapClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const c of children.splice(0)) await kill(c, 'SIGTERM');
  cleanupDirs();
});

const VOL = (n: number) => `vol-${n.toString(16).padStart(17, '0')}`;
const SNAP = (n: number) => `snap-${n.toString(16).padStart(17, '0')}`;

function kill(c: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((r) => c.once('exit', () => r()));
  c.kill(signal);
  return exited;
}

interface Delegate {
  process: ChildProcess;
  client: SoapClient;
}

function writeConfig(site: Site): string {
  const dir = tempDir('vbs-lvm-proc-');
  const pki = new PkiStore(join(dir, 'pki'));
  pki.ensureCa();
  pki.ensureIdentity('volume-delegate', { commonName: 'vbs-volume-delegate', use: 'server', hosts: ['127.0.0.1'] });
  pki.ensureIdentity('front', { commonName: 'vbs-front', use: 'server+client', hosts: ['127.0.0.1'] });
  const file = join(dir, 'volume-delegate.json');
  writeFileSync(
    file,
    JSON.stringify({
      role: 'volume-delegate',
      listen: { host: '127.0.0.1', port: 0 },
      tls: { key: 'pki/volume-delegate.key', cert: 'pki/volume-delegate.crt', ca: 'pki/ca.crt' },
      backend: { type: 'lvm-iscsi', vg: 'vbs', iqnPrefix: IQN_PREFIX, portal: '127.0.0.1:3260', target: 'iet', stateDir: site.stateDir, simState: site.state, copyChunkMiB: 128 },
    }),
  );
  return file;
}

async function startDelegate(config: string): Promise<Delegate> {
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'vbs.js'), 'serve', 'volume-delegate', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const url = await new Promise<string>((resolveUrl, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const msg = JSON.parse(line) as { ready?: string };
        if (msg.ready) resolveUrl(msg.ready);
      } catch {
        // not the control line
      }
    });
    child.once('exit', (code) => reject(new Error(`delegate exited with ${code}: ${stderr}`)));
  });
  const dir = join(config, '..', 'pki');
  const client = new SoapClient({
    def: VOLUME_DELEGATE_SERVICE,
    url,
    tls: { key: readFileSync(join(dir, 'front.key')), cert: readFileSync(join(dir, 'front.crt')), ca: readFileSync(join(dir, 'ca.crt')) },
  });
  clients.push(client);
  return { process: child, client };
}

async function describeOne(c: SoapClient, id: string): Promise<XmlRecord> {
  return ((await c.call('DescribeObjects', { id: [id] })).object as XmlRecord[])[0]!;
}

async function until(c: SoapClient, id: string, state: string): Promise<XmlRecord> {
  return eventually(async () => {
    const o = await describeOne(c, id);
    if (o.state === 'error' && state !== 'error') throw new Error(`${id}: ${String(o.message)}`);
    return o.state === state ? o : undefined;
  });
}

/** Host-simulator processes working on this state folder (children the killed delegate left behind). */
/** Simulator processes on this state folder; with `tool`, only those running that tool. */
function simProcessesOn(state: string, tool?: string): number[] {
  return readdirSync('/proc')
    .filter((d) => /^[0-9]+$/.test(d))
    .filter((d) => {
      try {
        const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
        return cmd.includes(state) && cmd.some((a) => a.endsWith('hostsim.js')) && (!tool || cmd.includes(tool));
      } catch {
        return false;
      }
    })
    .map(Number);
}

describe('volume delegate process, lvm-iscsi back end', { timeout: 180_000 }, () => {
  it('creates, snapshots, clones, exports and deletes through its SOAP interface', async () => {
    const site = simSite(8);
    const { client: c } = await startDelegate(writeConfig(site));
    expect(await c.call('GetCapacity', {})).toEqual({ backend: 'lvm-iscsi', totalBytes: 8 * GiB, freeBytes: 8 * GiB, provisionedBytes: 0 });
    expect(await c.call('CreateVolume', { volumeId: VOL(1), sizeGiB: 1 })).toEqual({ accepted: true });
    await until(c, VOL(1), 'ready');
    await c.call('CreateSnapshot', { snapshotId: SNAP(1), volumeId: VOL(1) });
    await until(c, SNAP(1), 'ready');
    await c.call('CreateVolume', { volumeId: VOL(2), sizeGiB: 2, snapshotId: SNAP(1) });
    const two = await until(c, VOL(2), 'ready');
    expect(two.sizeBytes).toBe(2 * GiB);
    const exp = await c.call('ExportVolume', { volumeId: VOL(2), vmmHost: 'localhost' });
    expect(exp.export).toEqual({ kind: 'iscsi', portal: '127.0.0.1:3260', iqn: `${IQN_PREFIX}:${VOL(2)}`, lun: 1 });
    expect(await c.call('ListExports', {})).toEqual({
      tracked: true,
      export: [{ volumeId: VOL(2), vmmHost: 'localhost', kind: 'iscsi', iqn: `${IQN_PREFIX}:${VOL(2)}`, tid: 1, lun: 1 }],
    });
    expect(await c.call('UnexportVolume', { volumeId: VOL(2), vmmHost: 'localhost' })).toEqual({ return: true });
    for (const id of [VOL(1), VOL(2), SNAP(1)]) expect(await c.call('DeleteObject', { id })).toEqual({ deleted: true });
    expect(await c.call('DeleteObject', { id: VOL(1) })).toEqual({ deleted: false });
    expect(lvNames(site.state)).toEqual([]);
    const err = await c.call('CreateVolume', { volumeId: '../vol', sizeGiB: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VbsError);
    expect((err as VbsError).code).toBe('InvalidParameterValue');
  });

  it('a copy cut off by a crash is never reported ready: its LVs are removed on restart and the copy can run again', async () => {
    const site = simSite(8);
    const config = writeConfig(site);
    const first = await startDelegate(config);
    await first.client.call('CreateVolume', { volumeId: VOL(1), sizeGiB: 1 });
    await until(first.client, VOL(1), 'ready');
    // The final rename hangs: the copy is whole but must not count as the snapshot.
    mkdirSync(join(site.state, 'hang'), { recursive: true });
    writeFileSync(join(site.state, 'hang', 'lvrename.rename'), '3600');
    await first.client.call('CreateSnapshot', { snapshotId: SNAP(1), volumeId: VOL(1) });
    await eventually(async () => ((await describeOne(first.client, SNAP(1))).progress === 99 ? true : undefined));
    // Wait for the hung rename itself, not for an earlier step (removing the cow LV) still running.
    await eventually(async () => (simProcessesOn(site.state, 'lvrename').length > 0 ? true : undefined));
    await kill(first.process, 'SIGKILL');
    for (const pid of simProcessesOn(site.state)) process.kill(pid, 'SIGKILL');
    expect(lvNames(site.state)).toEqual([`part.${SNAP(1)}`, VOL(1)]);
    rmSync(join(site.state, 'hang'), { recursive: true });

    const second = await startDelegate(config);
    expect(lvNames(site.state)).toEqual([VOL(1)]);
    expect(await describeOne(second.client, SNAP(1))).toEqual({ id: SNAP(1), state: 'absent' });
    // What the front's monitor does with an absent copy: start it again.
    await second.client.call('CreateSnapshot', { snapshotId: SNAP(1), volumeId: VOL(1) });
    await until(second.client, SNAP(1), 'ready');
    expect(lvNames(site.state)).toEqual([SNAP(1), VOL(1)]);
  });
});
