import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { Cluster } from './crash/cluster.js';
import { expectConsistent, settled, Tools, VMS } from './crash/matrix.js';
import { eventually, ROOT } from './harness.js';

/**
 * How the front learns that a volume delegate finished a copy (issue 10):
 * from the create's own answer when the work is done within it, else from the
 * long-poll (WaitObjects) it holds open to the delegate. The fallback poll
 * and the health probe are set to ten minutes here, so a test that passes
 * could only have been told by the long-poll (it would time out otherwise).
 *
 * Copies run a gated command: it waits for a gate file the test creates, so
 * a copy is in progress exactly as long as the test needs.
 */
const TEN_MINUTES = 600_000;

let cluster: Cluster;
let t: Tools;
let gate: string;

/** commands.properties with snapshot and clone copies held until the gate file exists. */
function gatedCommands(dir: string): string {
  const script = join(dir, 'gated-copy.mjs');
  writeFileSync(
    script,
    `import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
const [gate, source, path] = process.argv.slice(2);
const end = Date.now() + 120_000;
const tick = () => {
  // Then the shipped copy itself.
  if (existsSync(gate)) return process.exit(spawnSync('cp', ['--reflink=auto', '--sparse=always', source, path]).status ?? 1);
  if (Date.now() > end) process.exit(3);
  setTimeout(tick, 20);
};
tick();
`,
  );
  const gated = `${process.execPath} ${script} ${join(dir, 'gate')} <source> <path>`;
  const shipped = readFileSync(join(ROOT, 'commands.properties'), 'utf8');
  const out = shipped.replace(/^volume\.file\.(snapshot|clone) = .*$/gm, (_, k: string) => `volume.file.${k} = ${gated}`);
  const file = join(dir, 'gated.properties');
  writeFileSync(file, out);
  return file;
}

const openGate = () => writeFileSync(gate, '');
const closeGate = () => rmSync(gate, { force: true });

beforeAll(async () => {
  cluster = await Cluster.create(VMS);
  t = new Tools(cluster);
  gate = join(cluster.dir, 'gate');
  const frontFile = join(cluster.dir, 'front.json');
  const front = JSON.parse(readFileSync(frontFile, 'utf8')) as Record<string, unknown>;
  writeFileSync(frontFile, JSON.stringify({ ...front, pollIntervalMs: TEN_MINUTES, healthIntervalMs: TEN_MINUTES }), { mode: 0o600 });
  await cluster.restart('volume-delegate', { commands: gatedCommands(cluster.dir) });
  await cluster.restart('front');
}, 120_000);

afterAll(async () => {
  await cluster?.destroy();
});

const createVolume = async (input: XmlRecord) => (await t.api().call('CreateVolume', input)).volume as XmlRecord;
const createSnapshot = async (volumeId: string) => (await t.api().call('CreateSnapshot', { volumeId })).snapshot as XmlRecord;

describe('the front learns a create finished without a poll interval', () => {
  it('a blank volume is available in the answer to CreateVolume', async () => {
    const vol = await createVolume({ size: 1 });
    expect(vol.status).toBe('available');
    await t.remove([String(vol.volumeId)]);
  });

  it('a snapshot and a volume from it, copied after the create answered, are reported by the long-poll', async () => {
    closeGate();
    const vol = String((await createVolume({ size: 1 })).volumeId);
    const snap = await createSnapshot(vol);
    expect(snap.status).toBe('pending');
    openGate();
    await t.waitSnapshot(String(snap.snapshotId), 'completed');
    expect(await t.snapshot(String(snap.snapshotId))).toMatchObject({ progress: 100 });

    closeGate();
    const clone = await createVolume({ size: 2, snapshotId: snap.snapshotId });
    expect(clone.status).toBe('creating');
    openGate();
    await t.waitVolume(String(clone.volumeId), 'available');
    await t.remove([String(clone.volumeId), String(snap.snapshotId), vol]);
  }, 60_000);
});

describe('a restart of either side loses nothing', () => {
  it('the volume delegate killed while the front waits on it: the wait fails, the front reconnects; a lost snapshot copy ends in error (its moment is gone), a lost clone copy is started again and completes', async () => {
    openGate();
    const vol = String((await createVolume({ size: 1 })).volumeId);
    const source = String((await createSnapshot(vol)).snapshotId);
    await t.waitSnapshot(source, 'completed');
    closeGate();
    const snap = String((await createSnapshot(vol)).snapshotId);
    const clone = await createVolume({ size: 1, snapshotId: source });
    expect(clone.status).toBe('creating');
    const cloneId = String(clone.volumeId);
    const frontLog = () => readFileSync(cluster.logOf('front'), 'utf8');
    const failedWaitsBefore = frontLog().split('waiting on a volume delegate failed').length;
    await cluster.kill('volume-delegate');
    // The front's outstanding WaitObjects was cut: it says so, and backs off.
    await eventually(async () => (frontLog().split('waiting on a volume delegate failed').length > failedWaitsBefore ? true : undefined), 30_000, 50);
    openGate();
    await cluster.start('volume-delegate', { commands: join(cluster.dir, 'gated.properties') });
    // Copying the volume now would give the snapshot data of another moment.
    await t.waitSnapshot(snap, 'error');
    expect(await t.snapshot(snap)).toMatchObject({ statusMessage: expect.stringMatching(/restarted while copying this snapshot/) });
    expect(existsSync(join(cluster.dir, 'volumes', `${snap}.img`))).toBe(false);
    // A clone's source does not change: its copy is made again.
    await t.waitVolume(cloneId, 'available');
    expect(frontLog()).toContain('restarting a copy the volume delegate lost');
    await settled(cluster);
    await expectConsistent(t);
    await t.remove([cloneId, snap, source, vol]);
  }, 90_000);

  it('the front killed while a copy goes on: once started again it learns the copy finished meanwhile', async () => {
    openGate();
    const vol = String((await createVolume({ size: 1 })).volumeId);
    const snap = String((await createSnapshot(vol)).snapshotId);
    // On a loaded machine the copy may outlast the create's answer: the clone needs it completed.
    await t.waitSnapshot(snap, 'completed');
    closeGate();
    const clone = await createVolume({ size: 1, snapshotId: snap });
    expect(clone.status).toBe('creating');
    const id = String(clone.volumeId);
    await cluster.kill('front');
    openGate();
    await eventually(async () => (existsSync(join(cluster.dir, 'volumes', `${id}.img`)) ? true : undefined), 30_000, 20);
    await cluster.start('front');
    await t.waitVolume(id, 'available');
    await settled(cluster);
    await expectConsistent(t);
    await t.remove([id, snap, vol]);
  }, 90_000);
});
