import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVbs, type Vbs } from '../e2e/harness.js';

const run = promisify(execFile);
// Debian's python3 has python3-zeep (installed by scripts/install-deps.sh).
const PYTHON = '/usr/bin/python3';

let vbs: Vbs;
beforeAll(async () => {
  vbs = await startVbs();
});
afterAll(async () => {
  await vbs?.stop();
});

describe('an independent SOAP client (Python zeep)', () => {
  it('loads the served WSDL unedited and calls every operation', async () => {
    const pki = (f: string) => join(vbs.dir, 'pki', f);
    const { stdout } = await run(PYTHON, [join(import.meta.dirname, 'zeep_client.py'), vbs.url, pki('admin.crt'), pki('admin.key'), pki('ca.crt')], { timeout: 120_000 });
    const calls = Object.fromEntries(
      stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { call: string })
        .map((c) => [c.call, c]),
    ) as Record<string, { result?: any; fault?: string; code?: string }>; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(calls.CreateVolume!.result).toMatchObject({ size: 1, comment: 'from zeep', status: 'available', owner: 'admin' });
    expect(calls.DescribeVolumes!.result.volume[0].volumeId).toBe(calls.CreateVolume!.result.volumeId);
    expect(calls['DescribeVolumes.page']!.result).toMatchObject({ volume: [{ volumeId: calls.CreateVolume!.result.volumeId }], nextToken: null });
    expect(calls['DescribeVolumes.missing']).toMatchObject({ fault: 'InvalidVolume.NotFound', code: 'InvalidVolume.NotFound' });
    expect(calls['CreateVolume.bad']).toMatchObject({ fault: 'InvalidParameterValue' });
    expect(calls.CreateSnapshot!.result).toMatchObject({ status: 'pending', comment: 'zeep snap' });
    expect(calls.DescribeSnapshots!.result.snapshot[0]).toMatchObject({ status: 'completed', progress: 100 });
    expect(calls.AttachVolume!.result).toMatchObject({ vmId: 'vm3', device: 'xvdz', mode: 'r', status: 'attached' });
    expect(calls.DetachVolume!.result).toMatchObject({ vmId: 'vm3', status: 'detaching' });
    expect(calls.DeleteSnapshot!.result).toBe(true);
    expect(calls.DeleteVolume!.result).toBe(true);
  });
});
