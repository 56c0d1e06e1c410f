import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { join } from 'node:path';
import * as soap from 'soap';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VBS_SERVICE } from '../../src/services/vbs.js';
import { eventually, startVbs, type Vbs } from '../e2e/harness.js';

/**
 * A second independent SOAP client, beside zeep: node-soap loads the WSDL the
 * deployment serves (over mutual TLS, unedited) and calls every operation,
 * sending unset optional fields as xsi:nil="true" the way it does.
 */
let vbs: Vbs;
let client: soap.Client;
let agent: Agent;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;
const call = async (op: string, args: object): Promise<Any> => (await (client as Any)[`${op}Async`](args))[0];
const fault = async (op: string, args: object): Promise<{ code: string; faultcode: string; requestId?: string }> => {
  try {
    await call(op, args);
  } catch (err) {
    const f = (err as Any).root?.Envelope?.Body?.Fault;
    return { code: f?.detail?.VbsFault?.code, faultcode: f?.faultcode, requestId: f?.detail?.VbsFault?.requestId };
  }
  throw new Error(`${op} did not fault`);
};
/** node-soap gives a single repeated element as an object and several as an array. */
const list = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

beforeAll(async () => {
  vbs = await startVbs();
  const pki = (f: string) => readFileSync(join(vbs.dir, 'pki', f));
  agent = new Agent({ key: pki('admin.key'), cert: pki('admin.crt'), ca: pki('ca.crt'), keepAlive: false });
  client = await soap.createClientAsync(`${vbs.url}?wsdl`, { wsdl_options: { httpsAgent: agent } });
  client.setSecurity(new soap.ClientSSLSecurity(pki('admin.key'), pki('admin.crt'), pki('ca.crt')));
});
afterAll(async () => {
  agent?.destroy();
  await vbs?.stop();
});

describe('an independent SOAP client (node-soap)', () => {
  it('loads the served WSDL over mutual TLS and finds every operation', () => {
    const ops = Object.keys((client.describe() as Any).VBS.VBSPort);
    expect(ops.sort()).toEqual(Object.keys(VBS_SERVICE.operations).sort());
    expect(ops).toEqual(expect.arrayContaining(['ShareSnapshot', 'UnshareSnapshot', 'SetQuota', 'DescribeQuota']));
  });

  it('calls every operation; optional fields sent as xsi:nil are absent; arrays of one and of many', async () => {
    // snapshotId and clientToken null: node-soap writes <snapshotId xsi:nil="true"/>, which is "no snapshot", not "".
    const a = (await call('CreateVolume', { size: 1, comment: 'from node-soap', snapshotId: null, clientToken: null })).volume;
    // A blank volume's data is made within the call: it is available in the answer.
    expect(a).toMatchObject({ size: 1, comment: 'from node-soap', status: 'available', owner: 'admin' });
    expect(a.snapshotId).toBeUndefined();
    expect(client.lastRequest).toMatch(/<snapshotId xsi:nil="true"/);
    const b = (await call('CreateVolume', { size: 2, comment: null, snapshotId: null, clientToken: 'node-soap-b' })).volume;
    expect(client.lastRequest).toMatch(/<comment xsi:nil="true"/);
    expect(b.comment ?? '').toBe('');
    const available = async (id: string) =>
      eventually(async () => {
        const v = list((await call('DescribeVolumes', { volumeId: [id] })).volume)[0] as Any;
        return v.status === 'available' ? v : undefined;
      });
    await available(a.volumeId);
    await available(b.volumeId);

    const one = list((await call('DescribeVolumes', { volumeId: [a.volumeId] })).volume);
    expect(one.map((v: Any) => v.volumeId)).toEqual([a.volumeId]);
    const many = list((await call('DescribeVolumes', { volumeId: [a.volumeId, b.volumeId] })).volume);
    expect(many.map((v: Any) => v.volumeId).sort()).toEqual([a.volumeId, b.volumeId].sort());
    expect(await fault('DescribeVolumes', { volumeId: ['vol-00000000000000000'] })).toMatchObject({ code: 'InvalidVolume.NotFound', faultcode: 'soap:Client', requestId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    expect(await fault('CreateVolume', { size: 0 })).toMatchObject({ code: 'InvalidParameterValue' });

    const snap = (await call('CreateSnapshot', { volumeId: a.volumeId, comment: 'node-soap snap', clientToken: null })).snapshot;
    expect(snap).toMatchObject({ volumeId: a.volumeId, comment: 'node-soap snap' });
    expect(['pending', 'completed']).toContain(snap.status);
    const done = await eventually(async () => {
      const s = list((await call('DescribeSnapshots', { snapshotId: [snap.snapshotId] })).snapshot)[0] as Any;
      return s.status === 'completed' ? s : undefined;
    });
    expect(done).toMatchObject({ progress: 100 });

    // Read-only to two VMs: a volume with an array of two attachments, then of one.
    expect((await call('AttachVolume', { volumeId: a.volumeId, vmmHost: 'localhost', vmId: 'vm1', device: 'xvdk', mode: 'r' })).attachment).toMatchObject({ vmId: 'vm1', status: 'attached', mode: 'r' });
    expect((await call('AttachVolume', { volumeId: a.volumeId, vmmHost: 'localhost', vmId: 'vm2', device: 'xvdk', mode: 'r' })).attachment).toBeDefined();
    const two = list((await call('DescribeVolumes', { volumeId: [a.volumeId] })).volume)[0] as Any;
    expect(list(two.attachments).map((x: Any) => x.vmId).sort()).toEqual(['vm1', 'vm2']);
    // Two attachments and no vmmHost/vmId (sent as nil): which one is missing.
    expect(await fault('DetachVolume', { volumeId: a.volumeId, vmmHost: null, vmId: null })).toMatchObject({ code: 'MissingParameter' });
    expect((await call('DetachVolume', { volumeId: a.volumeId, vmmHost: 'localhost', vmId: 'vm2' })).attachment).toMatchObject({ vmId: 'vm2' });
    await eventually(async () => (list((list((await call('DescribeVolumes', { volumeId: [a.volumeId] })).volume)[0] as Any).attachments).length === 1 ? true : undefined));
    expect((await call('DetachVolume', { volumeId: a.volumeId, vmmHost: null, vmId: null })).attachment).toMatchObject({ vmId: 'vm1' });
    await available(a.volumeId);

    // Pages and filters: repeated filter elements, each with repeated values; the token comes back while more remain.
    const page = await call('DescribeVolumes', { filter: [{ name: 'status', value: ['available', 'in-use'] }, { name: 'size', value: ['1', '2'] }], maxResults: 5, nextToken: null });
    expect(list(page.volume).map((v: Any) => v.volumeId).sort()).toEqual([a.volumeId, b.volumeId].sort());
    expect(page.nextToken).toBeUndefined();
    expect(await fault('DescribeVolumes', { volumeId: [a.volumeId], maxResults: 5 })).toMatchObject({ code: 'InvalidParameterCombination', faultcode: 'soap:Client' });

    // Sharing and quotas.
    expect((await call('ShareSnapshot', { snapshotId: snap.snapshotId, user: 'bob' })).return).toBe(true);
    expect((await call('UnshareSnapshot', { snapshotId: snap.snapshotId, user: 'bob' })).return).toBe(true);
    expect((await call('SetQuota', { user: 'bob', volumes: 3, gib: null, snapshots: null })).quota).toMatchObject({ user: 'bob', volumeLimit: 3, volumes: 0 });
    expect((await call('DescribeQuota', { user: 'admin' })).quota).toMatchObject({ user: 'admin', volumes: 2, gib: 3, snapshots: 1, snapshotGibLimit: 102400 });
    expect((await call('SetQuota', { user: 'bob', volumes: null, gib: null, snapshots: null, snapshotGib: 7 })).quota).toMatchObject({ snapshotGibLimit: 7, volumeLimit: 3 });
    // Instances: which user may attach into a VM.
    expect((await call('AssignVm', { vmmHost: 'localhost', vmId: 'vm2', user: 'bob' })).assignment).toMatchObject({ vmmHost: 'localhost', vmId: 'vm2', user: 'bob' });
    expect(list((await call('DescribeVmAssignments', { user: 'bob' })).assignment).map((x: Any) => x.vmId)).toEqual(['vm2']);
    expect((await call('UnassignVm', { vmmHost: 'localhost', vmId: 'vm2' })).return).toBe(true);

    const check = await call('CheckConsistency', { repair: null });
    expect(check.clean).toBe(true);
    expect(list(check.finding)).toEqual([]);

    expect((await call('DeleteSnapshot', { snapshotId: snap.snapshotId })).return).toBe(true);
    expect((await call('DeleteVolume', { volumeId: a.volumeId })).return).toBe(true);
    expect((await call('DeleteVolume', { volumeId: b.volumeId })).return).toBe(true);
  });
});
