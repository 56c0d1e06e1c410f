import type { AttachmentRow, SnapshotRow, VolumeRow } from '../db/metadata.js';
import type { Record as XmlRecord } from '../soap/xml.js';
import type { Tag } from '../db/tags.js';

/** Tags by resource id (TagStore.of). */
export type TagsOf = ReadonlyMap<string, readonly Tag[]>;
const NO_TAGS: TagsOf = new Map();

function tagRecords(id: string, tags: TagsOf): XmlRecord[] {
  return (tags.get(id) ?? []).map((t) => ({ key: t.key, value: t.value }));
}

/** Metadata rows as the WSDL's records. */
export function attachmentRecord(a: AttachmentRow): XmlRecord {
  return {
    volumeId: a.volume_id,
    vmmHost: a.vmm_host,
    vmId: a.vm_id,
    instanceId: a.instance_id ?? undefined,
    device: a.device,
    mode: a.mode,
    status: a.status,
    attachTime: new Date(a.attach_time),
  };
}

export function volumeRecord(v: VolumeRow, attachments: readonly AttachmentRow[], tags: TagsOf = NO_TAGS): XmlRecord {
  return {
    volumeId: v.volume_id,
    size: v.size_gib,
    comment: v.comment,
    snapshotId: v.snapshot_id ?? undefined,
    status: v.status,
    statusMessage: v.status_message ?? undefined,
    createTime: new Date(v.create_time),
    owner: v.owner,
    attachments: attachments.filter((a) => a.volume_id === v.volume_id).map(attachmentRecord),
    availabilityZone: v.availability_zone ?? undefined,
    tag: tagRecords(v.volume_id, tags),
  };
}

export function snapshotRecord(s: SnapshotRow, tags: TagsOf = NO_TAGS): XmlRecord {
  return {
    snapshotId: s.snapshot_id,
    volumeId: s.volume_id,
    size: s.size_gib,
    comment: s.comment,
    status: s.status,
    statusMessage: s.status_message ?? undefined,
    progress: s.status === 'completed' ? 100 : s.progress,
    createTime: new Date(s.create_time),
    owner: s.owner,
    tag: tagRecords(s.snapshot_id, tags),
  };
}
