import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { findViolations } from '../invariants.js';
import { IQN_PREFIX } from './cluster.js';
import { settled, type Tools } from './matrix.js';
import { hostStatesAndSample, SAMPLED_SHARE, type Choice } from './suite.js';

/**
 * Which cases of the crash matrix run on the lvm-iscsi back end. Every
 * simulator call there starts a process, so the full cross product is slow.
 * The operations whose every step is real iSCSI or LVM work (`ALL`) run
 * every point where the hosts hold a state of their own, and a seeded third
 * of the front's other points (hostStatesAndSample); the others a fixed
 * sample of the points where their iSCSI sharing or their copy matters,
 * named by crash point.
 */
const ALL = 'all';

const KEPT: Record<string, typeof ALL | readonly string[]> = {
  'CreateVolume (blank)': ['VolumeDelegate.CreateVolume/after'],
  'CreateVolume (from a snapshot)': ALL,
  CreateSnapshot: ALL,
  DeleteVolume: ALL,
  // The LV removed, nothing of it journaled: recovery removes it again (rolls forward) and commits.
  DeleteSnapshot: ['DeleteSnapshot/commit'],
  'AttachVolume (w)': ALL,
  // The session and export vm2 already uses must survive the rollback of vm1's login.
  'AttachVolume (r, beside another read-only attachment)': ['AttachVolume/3/after', 'VmmDelegate.LoginTarget/after'],
  'DetachVolume (the last attachment)': ALL,
  // The session and export stay for vm2 when vm1's detach is rolled back or finished.
  'DetachVolume (one of several read-only attachments)': ['DetachVolume/1/after', 'VmmDelegate.DetachDisk/after'],
};

export const keptOnLvmIscsi: Choice = (s, all) => {
  const kept = KEPT[s.title];
  if (!kept) throw new Error(`no lvm-iscsi sample for ${s.title}`);
  if (kept === ALL) return hostStatesAndSample(SAMPLED_SHARE)(s, all);
  return all.filter((target) => kept.includes(target.point));
};

/**
 * The checks run after each case must see what a crash could leave behind on
 * this back end, or the matrix would pass for nothing: a stray session, a
 * target without an attachment, a partial LV, a by-path disk whose session is
 * gone. Each is made by hand with the simulated tools, seen, and undone.
 */
export async function expectChecksNoticeStrays(t: Tools): Promise<void> {
  const c = t.cluster;
  const { portal } = (JSON.parse(readFileSync(join(c.dir, 'volume-delegate.json'), 'utf8')) as { backend: { portal: string } }).backend;
  const seen = (pattern: RegExp) => expect(findViolations(c.dir).filter((v) => pattern.test(v))).toHaveLength(1);
  const vol = await t.availableVolume();
  const iqn = `${IQN_PREFIX}:${vol}`;
  await t.attach(vol, 'vm1', 'xvdb', 'w');
  await settled(c);

  c.sim('iscsiadm', '-m', 'node', '-T', iqn, '-p', portal, '--logout');
  seen(new RegExp(`^vm1/xvdb at localhost is /dev/disk/by-path/ip-${portal}-iscsi-${iqn}-lun-1, with no iSCSI session behind it$`));
  c.sim('iscsiadm', '-m', 'node', '-T', iqn, '-p', portal, '--login');
  await t.detach(vol, 'vm1');
  await settled(c);

  c.sim('ietadm', '--op', 'new', '--tid=99', '--params', `Name=${iqn}`);
  seen(new RegExp(`^target ${iqn} on local serves ${vol}, which has no attachment$`));
  c.sim('iscsiadm', '-m', 'discovery', '-t', 'st', '-p', portal);
  c.sim('iscsiadm', '-m', 'node', '-T', iqn, '-p', portal, '--login');
  seen(new RegExp(`^localhost has an iSCSI session to ${iqn} with no attachment of ${vol} there$`));
  c.sim('iscsiadm', '-m', 'node', '-T', iqn, '-p', portal, '--logout');
  c.sim('iscsiadm', '-m', 'node', '-T', iqn, '-p', portal, '-o', 'delete');
  c.sim('ietadm', '--op', 'delete', '--tid=99');

  c.sim('lvcreate', '-L', '1G', '-n', `part.${vol}`, 'vbs');
  seen(new RegExp(`^a partial copy of ${vol} remains on local$`));
  c.sim('lvremove', '-f', `vbs/part.${vol}`);

  await settled(c);
  await t.remove([vol]);
}
