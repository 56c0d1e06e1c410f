import { bool, int, rec, str, time, type ServiceDefinition } from '../soap/schema.js';

/** The front VBS service: the papers' eight operations, EBS-style records, and the administrators' and sharing operations. */
export const VBS_SERVICE: ServiceDefinition = {
  name: 'VBS',
  namespace: 'urn:vbs:2026:vbs',
  path: '/vbs',
  doc: 'VBS, the Virtual Block Store: persistent block volumes for cloud VMs.',
  types: {
    Attachment: [
      str('volumeId'),
      str('vmmHost'),
      str('vmId'),
      str('instanceId', { optional: true, doc: 'the instance the attach named (attach by instance id)' }),
      str('device'),
      str('mode', { doc: 'r (read-only, shareable) or w (read-write, exclusive)' }),
      str('status', { doc: 'attaching, attached or detaching' }),
      time('attachTime'),
    ],
    Volume: [
      str('volumeId'),
      int('size', { doc: 'GiB' }),
      str('comment'),
      str('snapshotId', { optional: true }),
      str('status', { doc: 'creating, available, in-use, deleting or error' }),
      str('statusMessage', { optional: true }),
      time('createTime'),
      str('owner'),
      rec('attachments', 'Attachment', { many: true }),
    ],
    RetiredVolume: [str('volumeId'), int('released'), bool('fenced'), str('message', { optional: true })],
    Finding: [
      str('kind', { doc: 'what differs, e.g. missing-data, orphan-object, orphan-export, orphan-disk, missing-disk, stuck-state, leftover, unreachable' }),
      str('resource', { doc: 'the volume, snapshot, attachment or object concerned' }),
      str('location', { doc: 'the delegate or VMM host where it was seen' }),
      str('detail'),
      bool('repaired', { doc: 'true when --repair fixed it' }),
    ],
    Snapshot: [
      str('snapshotId'),
      str('volumeId'),
      int('size', { doc: 'GiB' }),
      str('comment'),
      str('status', { doc: 'pending, completed, deleting or error' }),
      str('statusMessage', { optional: true }),
      int('progress', { doc: 'percent copied, 0-100' }),
      time('createTime'),
      str('owner'),
    ],
    Quota: [
      str('user'),
      int('volumeLimit', { doc: 'volumes the user may hold' }),
      int('gibLimit', { doc: 'GiB of volumes the user may hold' }),
      int('snapshotLimit', { doc: 'snapshots the user may hold' }),
      int('volumes', { doc: 'volumes held now (every status: being created, in error and being deleted too)' }),
      int('gib', { doc: 'GiB of the volumes held now' }),
      int('snapshots', { doc: 'snapshots held now' }),
    ],
    Filter: [
      str('name', { doc: 'volumes: status, size, snapshotId, attachment.vmmHost, attachment.vmId, attachment.status, owner (administrators), commentPrefix; snapshots: status, volumeId, owner (administrators), commentPrefix' }),
      str('value', { many: true, doc: 'one or more; a record matches when any value does' }),
    ],
  },
  operations: {
    CreateVolume: {
      doc: 'Creates a blank volume of size GiB, or one holding the data of snapshotId. It is creating until its data is in place.',
      input: [int('size'), str('comment', { optional: true }), str('snapshotId', { optional: true }), str('clientToken', { optional: true })],
      output: [rec('volume', 'Volume')],
    },
    DeleteVolume: {
      doc: 'Deletes a volume that is not attached.',
      input: [str('volumeId')],
      output: [bool('return')],
    },
    DescribeVolumes: {
      doc: 'Describes the given volumes, or the caller\'s volumes when none is given (an administrator: everyone\'s; each record names its owner): all of them, or pages of maxResults (5-1000) continued with nextToken. Filters are ANDed. Ids go without maxResults and nextToken.',
      input: [str('volumeId', { many: true }), rec('filter', 'Filter', { many: true }), int('maxResults', { optional: true }), str('nextToken', { optional: true })],
      output: [rec('volume', 'Volume', { many: true }), str('nextToken', { optional: true, doc: 'present while more records remain: send it back, with the same filters, for the next page' })],
    },
    CreateSnapshot: {
      doc: 'Takes a point-in-time copy of a volume. It is pending until the copy is complete.',
      input: [str('volumeId'), str('comment', { optional: true }), str('clientToken', { optional: true })],
      output: [rec('snapshot', 'Snapshot')],
    },
    DeleteSnapshot: {
      doc: 'Deletes a snapshot that no volume is being created from.',
      input: [str('snapshotId')],
      output: [bool('return')],
    },
    DescribeSnapshots: {
      doc: 'Describes the given snapshots, or the caller\'s snapshots and those shared with the caller when none is given (an administrator: everyone\'s): all of them, or pages of maxResults (5-1000) continued with nextToken. Filters are ANDed. Ids go without maxResults and nextToken.',
      input: [str('snapshotId', { many: true }), rec('filter', 'Filter', { many: true }), int('maxResults', { optional: true }), str('nextToken', { optional: true })],
      output: [rec('snapshot', 'Snapshot', { many: true }), str('nextToken', { optional: true, doc: 'present while more records remain: send it back, with the same filters, for the next page' })],
    },
    AttachVolume: {
      doc: 'Attaches a volume as device, read-write (w, the default) or read-only (r, shareable by many VMs), to a cloud instance (instanceId) or to a VM on a VMM host (vmmHost and vmId): exactly one of the two forms.',
      input: [
        str('volumeId'),
        str('vmmHost', { optional: true }),
        str('vmId', { optional: true }),
        str('device'),
        str('mode', { optional: true }),
        str('instanceId', { optional: true }),
      ],
      output: [rec('attachment', 'Attachment')],
    },
    CheckConsistency: {
      doc: 'Administrators only: compares the metadata with what every delegate reports and lists each difference; with repair, fixes what is safe to fix. Orphans are reported, never deleted.',
      input: [bool('repair', { optional: true })],
      output: [bool('clean'), rec('finding', 'Finding', { many: true })],
    },
    RetireHost: {
      doc: 'Administrators only: for a VMM host gone for good, keeps it out of every volume target it could reach, releases its attachments and cancels the work stuck on it. Each volume reports whether the host was fenced.',
      input: [str('host')],
      output: [str('host'), rec('volume', 'RetiredVolume', { many: true }), int('pending', { doc: 'work still pending on the host (0 once it is fully retired)' })],
    },
    ShareSnapshot: {
      doc: "Lets user see the snapshot and create volumes from it (EBS's createVolumePermission). The owner (or an administrator) only; sharing again changes nothing.",
      input: [str('snapshotId'), str('user')],
      output: [bool('return')],
    },
    UnshareSnapshot: {
      doc: 'Stops sharing the snapshot with user. Volumes already created from it stay theirs.',
      input: [str('snapshotId'), str('user')],
      output: [bool('return')],
    },
    SetQuota: {
      doc: "Administrators only: sets a user's limits (those given; the others stay as they were).",
      input: [str('user'), int('volumes', { optional: true }), int('gib', { optional: true }), int('snapshots', { optional: true })],
      output: [rec('quota', 'Quota')],
    },
    DescribeQuota: {
      doc: "Administrators only: a user's limits and what they hold now.",
      input: [str('user')],
      output: [rec('quota', 'Quota')],
    },
    DetachVolume: {
      doc: 'Detaches a volume; when it has several attachments, vmmHost and vmId, or instanceId, name the one to detach.',
      input: [
        str('volumeId'),
        str('vmmHost', { optional: true }),
        str('vmId', { optional: true }),
        str('instanceId', { optional: true }),
        bool('force', { optional: true, doc: "for a VMM host that does not answer: the target stops admitting the host first, then the attachment is released without asking it (storage that cannot fence: administrators only)" }),
      ],
      output: [rec('attachment', 'Attachment')],
    },
  },
};
