import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Record as XmlRecord } from '../../../src/soap/xml.js';
import { eventually, startVbs, type Vbs } from '../../e2e/harness.js';
import { libiscsi, lvNames } from './helpers.js';

const running: Vbs[] = [];
afterEach(async () => {
  for (const v of running.splice(0)) await v.stop();
});

/** Whether something accepts TCP connections at ip:port. */
function listening(portal: string): Promise<boolean> {
  const [host, port] = portal.split(':') as [string, string];
  return new Promise((done) => {
    const sock = connect({ host, port: Number(port) });
    sock.once('connect', () => (sock.destroy(), done(true)));
    sock.once('error', () => done(false));
  });
}

describe('vbs up --backend lvm-iscsi', { timeout: 240_000 }, () => {
  it('runs the classic workflow on a simulated VG with targets on its own tgtd, stopped with it', async () => {
    const vbs = await startVbs(['--backend', 'lvm-iscsi']);
    running.push(vbs);
    const cfg = JSON.parse(readFileSync(join(vbs.dir, 'volume-delegate.json'), 'utf8')) as { backend: { target: string; portal: string } };
    expect(cfg.backend).toMatchObject({ type: 'lvm-iscsi', vg: 'vbs', target: 'tgt', simState: 'vmm-sim' });
    const c = vbs.soap();
    const volumeId = String(((await c.call('CreateVolume', { size: 1 })).volume as XmlRecord).volumeId);
    const status = async (id: string) => String(((await c.call('DescribeVolumes', { volumeId: [id] })).volume as XmlRecord[])[0]!.status);
    await eventually(async () => ((await status(volumeId)) === 'available' ? true : undefined));
    const snapshotId = String(((await c.call('CreateSnapshot', { volumeId })).snapshot as XmlRecord).snapshotId);
    await eventually(async () =>
      String(((await c.call('DescribeSnapshots', { snapshotId: [snapshotId] })).snapshot as XmlRecord[])[0]!.status) === 'completed' ? true : undefined,
    );
    expect(lvNames(join(vbs.dir, 'vmm-sim'))).toEqual([snapshotId, volumeId]);
    // The deployment's own tgtd answers on the configured portal (no target until an attach).
    const ls = libiscsi('iscsi-ls', '-s', `iscsi://${cfg.backend.portal}`);
    expect(ls.stdout).not.toContain(volumeId);
    expect(await listening(cfg.backend.portal)).toBe(true);
    await vbs.stop(true);
    running.splice(0);
    // Stopped with the deployment: nothing answers there any more.
    expect(await listening(cfg.backend.portal)).toBe(false);
    // A second start finds the VG and its LVs.
    const again = await startVbs(['--backend', 'lvm-iscsi'], vbs.dir);
    running.push(again);
    expect(lvNames(join(vbs.dir, 'vmm-sim'))).toEqual([snapshotId, volumeId]);
    expect(await (async () => String(((await again.soap().call('DescribeVolumes', { volumeId: [volumeId] })).volume as XmlRecord[])[0]!.status))()).toBe('available');
  });

  it('leaves no tgtd behind when vbs up itself is killed', async () => {
    const vbs = await startVbs(['--backend', 'lvm-iscsi', '--target', 'tgt']);
    running.push(vbs);
    const portal = (JSON.parse(readFileSync(join(vbs.dir, 'volume-delegate.json'), 'utf8')) as { backend: { portal: string } }).backend.portal;
    expect(await listening(portal)).toBe(true);
    vbs.process.kill('SIGKILL');
    await eventually(async () => ((await listening(portal)) ? undefined : true), 20_000);
  });
});
