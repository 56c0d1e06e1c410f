import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CommandRunner } from '../../../src/commands/runner.js';
import type { TargetTool } from '../../../src/delegates/volume/iscsi-targets.js';
import { LvmIscsiBackend } from '../../../src/delegates/volume/lvm-iscsi-backend.js';
import { LvmTools } from '../../../src/delegates/volume/lvm-tools.js';
import { silentLogger } from '../../../src/core/log.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/**
 * A volume group whose `lvcreate` and `lvs` answer when the test says. `lvs`
 * prints the VG as it was when it started reading, as the real one can.
 */
function scriptedVg() {
  const lvs = new Map<string, number>();
  const gates = { create: undefined as Promise<void> | undefined, list: undefined as Promise<void> | undefined };
  const runner = {
    run: async (key: string, p: Record<string, string | number>) => {
      if (key === 'volume.lvm.list') {
        const seen = [...lvs].map(([name, bytes]) => `${name},${bytes},,-wi-a-----`).join('\n');
        await gates.list;
        return { stdout: seen, stderr: '' };
      }
      if (key === 'volume.lvm.vgs') return { stdout: `${2 ** 40},${2 ** 40}`, stderr: '' };
      if (key === 'volume.lvm.create') {
        await gates.create;
        lvs.set(String(p.lv), Number(p.bytes));
        return { stdout: '', stderr: '' };
      }
      throw new Error(`unexpected ${key}`);
    },
  } as unknown as CommandRunner;
  return { runner, gates };
}

const noTargets = { kind: 'tgt', fences: true, list: async () => [] } as unknown as TargetTool;

describe('describing an LV being created', () => {
  it('says creating, never absent, when the create finishes while lvs reads', async () => {
    const vg = scriptedVg();
    const stateDir = mkdtempSync(join(tmpdir(), 'vbs-lvm-race-'));
    dirs.push(stateDir);
    const b = await LvmIscsiBackend.open(
      { lvm: new LvmTools(vg.runner, 'vbs', undefined), targets: noTargets, iqnPrefix: 'iqn.2026-11.org.vbs', portal: '127.0.0.1:3260', stateDir, copyChunkMiB: 64 },
      silentLogger,
    );
    let finishCreate: () => void = () => {};
    vg.gates.create = new Promise((r) => (finishCreate = r));
    await b.createVolume('vol-0123456789abcdef0', 1);

    let finishList: () => void = () => {};
    vg.gates.list = new Promise((r) => (finishList = r));
    const described = b.describe('vol-0123456789abcdef0'); // lvs reads before the LV exists
    finishCreate();
    for (let k = 0; k < 50; k++) await new Promise((r) => setImmediate(r)); // the create's job ends meanwhile
    finishList();
    expect((await described).state).toBe('creating');
    vg.gates.list = undefined;
    expect((await b.describe('vol-0123456789abcdef0')).state).toBe('ready');
  });
});
