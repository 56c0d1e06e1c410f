import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostInitiatorName } from '../../src/core/initiator-name.js';
import { VMM_DELEGATE_SERVICE } from '../../src/services/vmm-delegate.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { libiscsiAs, type ChapAccount } from '../delegates/volume/helpers.js';
import { Cluster, LVM_TGT } from './crash/cluster.js';
import { Tools } from './crash/matrix.js';
import { backendOf, tgtTargets } from './lvm-iscsi/site.js';

/**
 * Fencing on a real tgtd (issue 17 items 8 and 9): a volume's target admits
 * only the VMM host it is attached on; a forced detach of a volume whose VMM
 * delegate does not answer leaves the target refusing that host's login
 * before the attachment is released; retiring a host leaves nothing pending
 * on it. The cluster's services are separate processes, so the VMM delegate
 * can be stopped while the front and the volume delegate run.
 */
const HOST = 'localhost';
let cluster: Cluster;
let t: Tools;

beforeAll(async () => {
  cluster = await Cluster.create(['vm1', 'vm2'], LVM_TGT);
  t = new Tools(cluster);
}, 120_000);

afterAll(async () => {
  await cluster?.destroy();
});

/** The CHAP account of the volume's export to the host, as the front recorded it (or last saw it: a released attachment's is kept here). */
const accounts = new Map<string, ChapAccount>();
function accountOf(volumeId: string): ChapAccount | undefined {
  const db = new Database(join(cluster.dir, 'vbs.db'), { readonly: true });
  try {
    const row = db.prepare('SELECT source FROM attachments WHERE volume_id = ? AND source IS NOT NULL').get(volumeId) as { source: string } | undefined;
    const s = row ? (JSON.parse(row.source) as { chapUser?: string; chapSecret?: string }) : {};
    if (s.chapUser && s.chapSecret) accounts.set(volumeId, { user: s.chapUser, secret: s.chapSecret });
  } finally {
    db.close();
  }
  return accounts.get(volumeId);
}

/** Logs in to the volume's LUN as an initiator name with the export's CHAP account, from outside VBS (libiscsi); 0 when admitted. */
function loginAs(volumeId: string, initiator: string): number {
  const b = backendOf(cluster.dir);
  return libiscsiAs(accountOf(volumeId), 'iscsi-inq', '-i', initiator, `iscsi://${b.portal}/iqn.2026-11.org.vbs:${volumeId}/1`).code;
}

function acl(volumeId: string): string[] | undefined {
  return tgtTargets(backendOf(cluster.dir).tgtControlPort!).find((x) => x.iqn.endsWith(`:${volumeId}`))?.acl;
}

/** Work the front's journal still holds: running workflows and leftover undos. */
function pending(): number {
  const db = new Database(join(cluster.dir, 'vbs.db'), { readonly: true });
  try {
    const w = db.prepare(`SELECT count(*) AS n FROM workflows WHERE state = 'running'`).get() as { n: number };
    const l = db.prepare('SELECT count(*) AS n FROM leftovers').get() as { n: number };
    return w.n + l.n;
  } finally {
    db.close();
  }
}

describe('fencing on a real tgtd', { timeout: 300_000 }, () => {
  it('admits only the host a volume is attached on; a forced detach with the VMM host stopped fences it first', async () => {
    const vol = await t.availableVolume();
    await t.attach(vol, 'vm1', '/dev/sdb', 'w');
    expect(acl(vol)).toEqual([hostInitiatorName(HOST)]);
    expect(loginAs(vol, hostInitiatorName(HOST))).toBe(0);
    expect(loginAs(vol, hostInitiatorName('intruder'))).not.toBe(0);

    await cluster.kill('vmm-delegate');
    const r = await t.api().call('DetachVolume', { volumeId: vol, vmmHost: HOST, vmId: 'vm1', force: true });
    expect(r.attachment as XmlRecord).toMatchObject({ status: 'detaching' });
    await t.waitVolume(vol, 'available');
    expect(await t.attachmentsOf(vol)).toEqual([]);
    // The host that never answered can no longer log in: its target is gone with its last attachment.
    expect(acl(vol)).toBeUndefined();
    expect(loginAs(vol, hostInitiatorName(HOST))).not.toBe(0);
    await cluster.start('vmm-delegate');
  });

  it('retiring a host releases its attachments, cancels its stuck detach, and leaves nothing pending', async () => {
    // The VMM host dies for good in the middle of a detach, after removing the disk.
    await cluster.restart('vmm-delegate', { crashAt: `${VMM_DELEGATE_SERVICE.name}.DetachDisk/after` });
    const vol = await t.availableVolume();
    await t.attach(vol, 'vm2', '/dev/sdc', 'w');
    accountOf(vol);
    // The detach cannot finish without the host: it stalls, pending in the journal.
    await expect(t.detach(vol, 'vm2')).rejects.toThrow(/could not finish/);
    expect(cluster.isRunning('vmm-delegate')).toBe(false);
    expect(pending()).toBeGreaterThan(0);

    const out = await t.api().call('RetireHost', { host: HOST });
    expect(out).toMatchObject({ host: HOST, pending: 0 });
    expect(out.volume).toEqual([{ volumeId: vol, released: 1, fenced: true }]);
    expect(pending()).toBe(0);
    await t.waitVolume(vol, 'available');
    expect(await t.attachmentsOf(vol)).toEqual([]);
    expect(loginAs(vol, hostInitiatorName(HOST))).not.toBe(0);
  });
});
