import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe } from 'vitest';
import { startVbs, type Vbs } from '../harness.js';
import { imageRoundTrip } from '../image-roundtrip.js';
import { backendOf, simDump, type BackendConfig, type Site } from './site.js';

/**
 * Images on `vbs up --backend lvm-iscsi` (the simulated VG; the target
 * daemon plays no part), through the CLI and a raw HTTPS upload: an image
 * is an LV of whole GiB, each volume from it a full copy (no thin pool). The
 * delegate's state folder must hold no staging file after every case.
 */
describe('images on the lvm-iscsi back end through vbs up and the CLI', { timeout: 240_000 }, () => {
  let vbs: Vbs;
  let site: Site;
  let b: BackendConfig;

  beforeAll(async () => {
    vbs = await startVbs(['--backend', 'lvm-iscsi', '--target', 'iet']);
    site = { dir: vbs.dir, cli: (...a) => vbs.cli(...a), api: vbs.soap() };
    b = backendOf(vbs.dir);
  }, 120_000);
  afterAll(async () => {
    await vbs?.stop(process.env.KEEP_VBS === '1');
  });

  imageRoundTrip({
    vbs: () => vbs,
    site: () => site,
    stored: async () => [
      ...simDump(b.simState).vgs.flatMap((vg) => vg.lvs.map((l) => l.name)),
      ...readdirSync(b.stateDir)
        .filter((f) => f.endsWith('.part'))
        .map((f) => `state/${f}`),
    ],
    ownedBy: (snap, vols) => [snap, ...vols],
    // Each volume is a full copy of 1 GiB here: a few show the fan-out.
    count: 3,
  });
});
