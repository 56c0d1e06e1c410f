import { VbsError } from '../core/errors.js';
import type { Record as XmlRecord } from '../soap/xml.js';
import { shownDevice, toHypervisorDevice, toHypervisorDeviceFilter, type DevicePrefix } from './devices.js';
import type { Params } from './params.js';
import { el, set, type Xml } from './xml.js';

/**
 * The EC2 actions VBS serves (issue 18), each a translation: EC2's parameters
 * into the input of the front's own operation (the handlers the SOAP service
 * calls, src/front/service.ts: the same validation, ownership, quotas,
 * workflows, request ids and audit lines), and its output into EC2's XML.
 * No business logic lives here.
 */

/** Calls one of the front's operations as this request's caller (audited like a SOAP call). */
export type Invoke = (operation: string, input: XmlRecord) => Promise<XmlRecord>;

export interface Ec2Env {
  readonly caller: string;
  readonly devicePrefix: DevicePrefix;
}

export interface Ec2Action {
  /** The front operation this action is, for the audit line of a request refused before it was called. */
  readonly operation: string;
  run(p: Params, invoke: Invoke, env: Ec2Env): Promise<Xml[]>;
}

// --- shared pieces ------------------------------------------------------------

const rec = (x: unknown): XmlRecord => (x ?? {}) as XmlRecord;
const recs = (x: unknown): XmlRecord[] => (Array.isArray(x) ? (x as XmlRecord[]) : x ? [x as XmlRecord] : []);

function required(p: Params, name: string): string {
  const v = p.str(name);
  if (v === undefined || v === '') throw new VbsError('MissingParameter', `The request must contain the parameter ${name}.`);
  return v;
}

function tagSet(tags: unknown): Xml {
  return set('tagSet', recs(tags).map((t) => [el('key', t.key as string), el('value', (t.value as string | undefined) ?? '')]));
}

/** Tag.N.Key / Tag.N.Value. */
function tagsOf(p: Params, name = 'Tag'): XmlRecord[] {
  return p.groups(name).map((g) => ({ key: g.str('Key'), value: g.str('Value') }));
}

/** TagSpecification.N: tags for the resource type being created; another type is refused. */
function tagSpecifications(p: Params, resourceType: 'volume' | 'snapshot'): XmlRecord[] {
  const out: XmlRecord[] = [];
  for (const spec of p.groups('TagSpecification')) {
    const type = spec.str('ResourceType');
    if (type !== resourceType) {
      throw new VbsError('InvalidParameterValue', `Value (${(type ?? '').slice(0, 32)}) for parameter TagSpecification.ResourceType is invalid: this request creates a ${resourceType}.`);
    }
    out.push(...tagsOf(spec));
  }
  return out;
}

interface FilterMap {
  /** EC2's filter name → ours. */
  readonly names: Readonly<Record<string, string>>;
  /** Values that EC2 spells otherwise (a device name). */
  readonly value?: (name: string, value: string, env: Ec2Env) => string;
}

/** Filter.N.Name / Filter.N.Value.M, in our names; `tag:KEY` passes as is. An unknown name is refused by name. */
function filters(p: Params, map: FilterMap, env: Ec2Env, kind: string): XmlRecord[] {
  return p.groups('Filter').map((g) => {
    const name = required(g, 'Name');
    const ours = name.startsWith('tag:') ? name : map.names[name];
    if (ours === undefined) {
      throw new VbsError('InvalidParameterValue', `The filter '${name.slice(0, 64)}' is invalid for ${kind}; valid filters: ${Object.keys(map.names).join(', ')}, tag:KEY.`);
    }
    const values = g.list('Value').map((v) => (map.value ? map.value(ours, v, env) : v));
    return { name: ours, value: values };
  });
}

function paging(p: Params): XmlRecord {
  return { maxResults: p.int('MaxResults'), nextToken: p.str('NextToken') };
}

// --- volumes ------------------------------------------------------------------

const VOLUME_FILTERS: FilterMap = {
  names: {
    status: 'status',
    size: 'size',
    'snapshot-id': 'snapshotId',
    'volume-id': 'volumeId',
    'availability-zone': 'availabilityZone',
    'attachment.instance-id': 'attachment.instanceId',
    'attachment.status': 'attachment.status',
    'attachment.device': 'attachment.device',
    'tag-key': 'tagKey',
  },
  value: (name, value, env) => (name === 'attachment.device' ? toHypervisorDeviceFilter(value, env.devicePrefix) : value),
};

function attachmentItem(a: XmlRecord): Xml[] {
  return [
    el('volumeId', a.volumeId as string),
    // The host + VM form has no instance id: the VM's id stands for it.
    el('instanceId', (a.instanceId as string | undefined) ?? (a.vmId as string)),
    el('device', shownDevice(a.device as string)),
    el('status', a.status as string),
    el('attachTime', a.attachTime as Date),
    el('deleteOnTermination', false),
  ];
}

/** A volume as EC2 describes it. Every VBS volume is of one type, reported as standard. */
function volumeItem(v: XmlRecord): Xml[] {
  return [
    el('volumeId', v.volumeId as string),
    el('size', v.size as number),
    el('snapshotId', (v.snapshotId as string | undefined) ?? ''),
    el('availabilityZone', v.availabilityZone as string | undefined),
    el('status', v.status as string),
    el('createTime', v.createTime as Date),
    set('attachmentSet', recs(v.attachments).map(attachmentItem)),
    tagSet(v.tag),
    el('volumeType', 'standard'),
    el('encrypted', false),
    el('multiAttachEnabled', false),
  ];
}

/** VolumeType: VBS has one kind of volume, EC2's `standard`; the others promise performance it does not have. */
function volumeType(p: Params): void {
  const type = p.str('VolumeType');
  if (type !== undefined && type !== 'standard') {
    throw new VbsError('InvalidParameterValue', `Value (${type.slice(0, 32)}) for parameter VolumeType is invalid: VBS volumes are of one type, standard (no provisioned IOPS or throughput).`);
  }
  for (const name of ['Iops', 'Throughput', 'KmsKeyId', 'OutpostArn']) {
    if (p.str(name) !== undefined) throw new VbsError('InvalidParameterValue', `The parameter ${name} is not supported by VBS.`);
  }
  if (p.bool('Encrypted') === true) throw new VbsError('InvalidParameterValue', 'Value (true) for parameter Encrypted is invalid: VBS does not encrypt volumes.');
  if (p.bool('MultiAttachEnabled') === true) {
    throw new VbsError('InvalidParameterValue', 'Value (true) for parameter MultiAttachEnabled is invalid: VBS shares a volume among instances read-only only (our own CLI and SOAP API: mode r).');
  }
  p.bool('DryRun');
}

const createVolume: Ec2Action = {
  operation: 'CreateVolume',
  async run(p, invoke) {
    volumeType(p);
    const snapshotId = p.str('SnapshotId');
    let size = p.int('Size');
    const zone = p.str('AvailabilityZone');
    const tags = tagSpecifications(p, 'volume');
    const clientToken = p.str('ClientToken');
    // EC2: without Size, a volume from a snapshot is the snapshot's size.
    if (size === undefined && snapshotId !== undefined) {
      const found = await invoke('DescribeSnapshots', { snapshotId: [snapshotId] });
      size = rec(recs(found.snapshot)[0]).size as number;
    }
    if (size === undefined) throw new VbsError('MissingParameter', 'The request must contain the parameter Size (or SnapshotId).');
    const out = await invoke('CreateVolume', { size, snapshotId, availabilityZone: zone, clientToken, tag: tags });
    return volumeItem(rec(out.volume));
  },
};

const deleteVolume: Ec2Action = {
  operation: 'DeleteVolume',
  async run(p, invoke) {
    p.bool('DryRun');
    await invoke('DeleteVolume', { volumeId: required(p, 'VolumeId') });
    return [el('return', true)];
  },
};

const describeVolumes: Ec2Action = {
  operation: 'DescribeVolumes',
  async run(p, invoke, env) {
    p.bool('DryRun');
    const ids = p.list('VolumeId');
    const out = await invoke('DescribeVolumes', { volumeId: ids, filter: filters(p, VOLUME_FILTERS, env, 'volumes'), ...paging(p) });
    return [set('volumeSet', recs(out.volume).map(volumeItem)), el('nextToken', out.nextToken as string | undefined)];
  },
};

// --- attachments --------------------------------------------------------------

const attachVolume: Ec2Action = {
  operation: 'AttachVolume',
  async run(p, invoke, env) {
    p.bool('DryRun');
    const device = toHypervisorDevice(required(p, 'Device'), env.devicePrefix);
    const out = await invoke('AttachVolume', { volumeId: required(p, 'VolumeId'), instanceId: required(p, 'InstanceId'), device });
    return attachmentItem(rec(out.attachment));
  },
};

const detachVolume: Ec2Action = {
  operation: 'DetachVolume',
  async run(p, invoke, env) {
    p.bool('DryRun');
    const volumeId = required(p, 'VolumeId');
    const instanceId = p.str('InstanceId');
    const device = p.str('Device');
    const force = p.bool('Force');
    if (device !== undefined) {
      // EC2 detaches only what is on that device: checked before anything changes.
      const wanted = toHypervisorDevice(device, env.devicePrefix);
      const vol = rec(recs((await invoke('DescribeVolumes', { volumeId: [volumeId] })).volume)[0]);
      const onDevice = recs(vol.attachments).some((a) => a.device === wanted && (instanceId === undefined || (a.instanceId ?? a.vmId) === instanceId));
      if (!onDevice) throw new VbsError('InvalidAttachment.NotFound', `The volume '${volumeId}' is not attached as ${device.slice(0, 32)}${instanceId ? ` to '${instanceId}'` : ''}.`);
    }
    const out = await invoke('DetachVolume', { volumeId, instanceId, force });
    return attachmentItem(rec(out.attachment));
  },
};

// --- snapshots ----------------------------------------------------------------

const SNAPSHOT_FILTERS: FilterMap = {
  names: {
    status: 'status',
    'volume-id': 'volumeId',
    'snapshot-id': 'snapshotId',
    'owner-id': 'owner',
    'volume-size': 'size',
    'tag-key': 'tagKey',
    description: 'comment',
  },
};

function snapshotItem(s: XmlRecord): Xml[] {
  return [
    el('snapshotId', s.snapshotId as string),
    el('volumeId', s.volumeId as string),
    el('status', s.status as string),
    el('statusMessage', s.statusMessage as string | undefined),
    el('startTime', s.createTime as Date),
    el('progress', `${s.progress as number}%`),
    el('ownerId', s.owner as string),
    el('volumeSize', s.size as number),
    el('description', (s.comment as string | undefined) ?? ''),
    el('encrypted', false),
    el('storageTier', 'standard'),
    tagSet(s.tag),
  ];
}

const createSnapshot: Ec2Action = {
  operation: 'CreateSnapshot',
  async run(p, invoke) {
    p.bool('DryRun');
    const out = await invoke('CreateSnapshot', { volumeId: required(p, 'VolumeId'), comment: p.str('Description'), tag: tagSpecifications(p, 'snapshot') });
    return snapshotItem(rec(out.snapshot));
  },
};

const deleteSnapshot: Ec2Action = {
  operation: 'DeleteSnapshot',
  async run(p, invoke) {
    p.bool('DryRun');
    await invoke('DeleteSnapshot', { snapshotId: required(p, 'SnapshotId') });
    return [el('return', true)];
  },
};

/** `self`, or the caller's own name: EC2's way of saying "mine". */
function isSelf(value: string, env: Ec2Env): boolean {
  return value === 'self' || value === env.caller;
}

const describeSnapshots: Ec2Action = {
  operation: 'DescribeSnapshots',
  async run(p, invoke, env) {
    p.bool('DryRun');
    const owners = p.list('Owner'); // OwnerIds travel as Owner.N
    const restorableBy = p.list('RestorableBy');
    const filter = filters(p, SNAPSHOT_FILTERS, env, 'snapshots');
    // OwnerId: the owners' snapshots (self: the caller's own, not those shared with them); another user's: administrators only (the filter says so).
    if (owners.length) {
      if (owners.includes('amazon') || owners.includes('aws-marketplace')) throw new VbsError('InvalidParameterValue', 'VBS has no Amazon-owned snapshots.');
      filter.push({ name: 'owner', value: owners.map((o) => (o === 'self' ? env.caller : o)) });
    }
    // RestorableBy: VBS shows a user what they may restore already; only they themselves can be asked about.
    for (const who of restorableBy) {
      if (!isSelf(who, env)) throw new VbsError('InvalidParameterValue', `Value (${who.slice(0, 64)}) for parameter RestorableBy is invalid: only self is supported.`);
    }
    const out = await invoke('DescribeSnapshots', { snapshotId: p.list('SnapshotId'), filter, ...paging(p) });
    return [set('snapshotSet', recs(out.snapshot).map(snapshotItem)), el('nextToken', out.nextToken as string | undefined)];
  },
};

// --- snapshot attributes: createVolumePermission is our sharing --------------------

function permissionAttribute(p: Params): void {
  const attribute = required(p, 'Attribute');
  if (attribute !== 'createVolumePermission') {
    throw new VbsError('InvalidParameterValue', `Value (${attribute.slice(0, 64)}) for parameter Attribute is invalid: VBS snapshots have createVolumePermission only.`);
  }
}

function refuseGroups(groups: readonly string[]): void {
  if (groups.length) throw new VbsError('InvalidParameterValue', 'VBS snapshots are shared with users, never made public (UserGroup all).');
}

const modifySnapshotAttribute: Ec2Action = {
  operation: 'ShareSnapshot',
  async run(p, invoke) {
    p.bool('DryRun');
    const snapshotId = required(p, 'SnapshotId');
    const attribute = p.str('Attribute');
    const add: string[] = [];
    const remove: string[] = [];
    // Two spellings: OperationType + UserId.N, or CreateVolumePermission.Add.N.UserId / .Remove.N.UserId.
    const operationType = p.str('OperationType');
    const users = p.list('UserId');
    refuseGroups(p.list('UserGroup'));
    if (users.length || operationType !== undefined) {
      if (operationType !== 'add' && operationType !== 'remove') throw new VbsError('InvalidParameterValue', 'Value for parameter OperationType is invalid: expected add or remove.');
      (operationType === 'add' ? add : remove).push(...users);
    }
    for (const g of p.groups('CreateVolumePermission.Add')) {
      refuseGroups(g.str('Group') ? ['all'] : []);
      add.push(required(g, 'UserId'));
    }
    for (const g of p.groups('CreateVolumePermission.Remove')) {
      refuseGroups(g.str('Group') ? ['all'] : []);
      remove.push(required(g, 'UserId'));
    }
    if (attribute !== undefined && attribute !== 'createVolumePermission') permissionAttribute(p);
    if (!add.length && !remove.length) throw new VbsError('MissingParameter', 'The request must name users to add or remove (UserId.N with OperationType, or CreateVolumePermission).');
    for (const user of add) await invoke('ShareSnapshot', { snapshotId, user });
    for (const user of remove) await invoke('UnshareSnapshot', { snapshotId, user });
    return [el('return', true)];
  },
};

const describeSnapshotAttribute: Ec2Action = {
  operation: 'DescribeSnapshotSharing',
  async run(p, invoke) {
    p.bool('DryRun');
    const snapshotId = required(p, 'SnapshotId');
    permissionAttribute(p);
    const out = await invoke('DescribeSnapshotSharing', { snapshotId });
    return [el('snapshotId', snapshotId), set('createVolumePermission', recs(out.user).map((u) => [el('userId', u as unknown as string)]))];
  },
};

const resetSnapshotAttribute: Ec2Action = {
  operation: 'UnshareSnapshot',
  async run(p, invoke) {
    p.bool('DryRun');
    const snapshotId = required(p, 'SnapshotId');
    permissionAttribute(p);
    const out = await invoke('DescribeSnapshotSharing', { snapshotId });
    for (const user of recs(out.user)) await invoke('UnshareSnapshot', { snapshotId, user: user as unknown as string });
    return [el('return', true)];
  },
};

// --- tags and zones -----------------------------------------------------------

const createTags: Ec2Action = {
  operation: 'CreateTags',
  async run(p, invoke) {
    p.bool('DryRun');
    await invoke('CreateTags', { resourceId: p.list('ResourceId'), tag: tagsOf(p) });
    return [el('return', true)];
  },
};

const deleteTags: Ec2Action = {
  operation: 'DeleteTags',
  async run(p, invoke) {
    p.bool('DryRun');
    await invoke('DeleteTags', { resourceId: p.list('ResourceId'), tag: tagsOf(p) });
    return [el('return', true)];
  },
};

const TAG_FILTERS: FilterMap = { names: { key: 'key', value: 'value', 'resource-id': 'resourceId', 'resource-type': 'resourceType' } };

const describeTags: Ec2Action = {
  operation: 'DescribeTags',
  async run(p, invoke, env) {
    p.bool('DryRun');
    const out = await invoke('DescribeTags', { filter: filters(p, TAG_FILTERS, env, 'tags'), ...paging(p) });
    return [
      set(
        'tagSet',
        recs(out.tag).map((t) => [el('resourceId', t.resourceId as string), el('resourceType', t.resourceType as string), el('key', t.key as string), el('value', t.value as string)]),
      ),
      el('nextToken', out.nextToken as string | undefined),
    ];
  },
};

/** EC2's zone filters → the field of the front's zone record (a zone's id and group are its name and region). */
const ZONE_FILTERS: Readonly<Record<string, string>> = {
  'zone-name': 'zoneName',
  'zone-id': 'zoneName',
  state: 'state',
  'region-name': 'regionName',
  'group-name': 'regionName',
};

const describeAvailabilityZones: Ec2Action = {
  operation: 'DescribeAvailabilityZones',
  async run(p, invoke) {
    p.bool('DryRun');
    p.bool('AllAvailabilityZones');
    const names = [...p.list('ZoneName'), ...p.list('ZoneId')]; // zone ids are zone names
    // Zones are few: their filters (exact values) are applied here, to what the front describes.
    const zoneFilters: [string, string[]][] = p.groups('Filter').map((f) => {
      const name = required(f, 'Name');
      if (!Object.hasOwn(ZONE_FILTERS, name)) throw new VbsError('InvalidParameterValue', `The filter '${name.slice(0, 64)}' is invalid for zones; valid filters: ${Object.keys(ZONE_FILTERS).join(', ')}.`);
      return [ZONE_FILTERS[name]!, f.list('Value')];
    });
    const out = await invoke('DescribeAvailabilityZones', { zoneName: names });
    const zones = recs(out.zone).filter((z) => zoneFilters.every(([field, values]) => values.includes(String(z[field]))));
    return [
      set(
        'availabilityZoneInfo',
        zones.map((z) => [
          el('zoneName', z.zoneName as string),
          el('zoneState', z.state as string),
          el('regionName', z.regionName as string),
          el('zoneId', z.zoneName as string),
          el('zoneType', 'availability-zone'),
          el('optInStatus', 'opt-in-not-required'),
          el('groupName', z.regionName as string),
          el('networkBorderGroup', z.regionName as string),
          set('messageSet', recs(z.message).map((m) => [el('message', m as unknown as string)])),
        ]),
      ),
    ];
  },
};

/** Every action, by EC2's name. */
export const ACTIONS: Readonly<Record<string, Ec2Action>> = {
  CreateVolume: createVolume,
  DeleteVolume: deleteVolume,
  DescribeVolumes: describeVolumes,
  AttachVolume: attachVolume,
  DetachVolume: detachVolume,
  CreateSnapshot: createSnapshot,
  DeleteSnapshot: deleteSnapshot,
  DescribeSnapshots: describeSnapshots,
  ModifySnapshotAttribute: modifySnapshotAttribute,
  DescribeSnapshotAttribute: describeSnapshotAttribute,
  ResetSnapshotAttribute: resetSnapshotAttribute,
  CreateTags: createTags,
  DeleteTags: deleteTags,
  DescribeTags: describeTags,
  DescribeAvailabilityZones: describeAvailabilityZones,
  ...resizeActions(),
};

/** Growing a volume: the front's ModifyVolume and DescribeVolumesModifications (src/front/modify-volume.ts), in EC2's shapes. */
function resizeActions(): Record<string, Ec2Action> {
  const modificationItem = (m: XmlRecord): Xml[] => [
    el('volumeId', m.volumeId as string),
    el('modificationState', m.modificationState as string),
    el('statusMessage', m.statusMessage as string | undefined),
    el('targetSize', m.targetSize as number),
    el('originalSize', m.originalSize as number),
    el('targetVolumeType', 'standard'),
    el('originalVolumeType', 'standard'),
    el('progress', m.progress as number),
    el('startTime', m.startTime as Date),
    el('endTime', m.endTime as Date | undefined),
  ];
  return {
    ModifyVolume: {
      operation: 'ModifyVolume',
      async run(p, invoke) {
        p.bool('DryRun');
        volumeType(p);
        const out = await invoke('ModifyVolume', { volumeId: required(p, 'VolumeId'), size: p.int('Size') });
        return [el('volumeModification', modificationItem(rec(out.modification)))];
      },
    },
    DescribeVolumesModifications: {
      operation: 'DescribeVolumesModifications',
      async run(p, invoke, env) {
        p.bool('DryRun');
        const out = await invoke('DescribeVolumesModifications', {
          volumeId: p.list('VolumeId'),
          filter: filters(p, { names: { 'volume-id': 'volumeId', 'modification-state': 'modificationState', 'original-size': 'originalSize', 'target-size': 'targetSize' } }, env, 'modifications'),
          ...paging(p),
        });
        return [set('volumeModificationSet', recs(out.modification).map(modificationItem)), el('nextToken', out.nextToken as string | undefined)];
      },
    },
  };
}
