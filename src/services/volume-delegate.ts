import { DISK_SOURCE_FIELDS } from './disk-source.js';
import { bool, int, long, rec, str, type ServiceDefinition } from '../soap/schema.js';
import { GENERATION } from './generation.js';

/**
 * The Volume Delegate: runs on a storage node and does what the front asks
 * with host commands. Every operation is idempotent, so the front may retry
 * and recover freely.
 */
export const VOLUME_DELEGATE_SERVICE: ServiceDefinition = {
  name: 'VolumeDelegate',
  namespace: 'urn:vbs:2026:volume-delegate',
  path: '/volume-delegate',
  doc: 'VBS Volume Delegate: creates, copies, exports and deletes volume and snapshot data on a storage node.',
  types: {
    StoredObject: [
      str('id', { doc: 'vol-... or snap-...' }),
      str('state', { doc: 'absent, creating, ready or error' }),
      str('message', { optional: true }),
      long('sizeBytes', { optional: true }),
      int('progress', { optional: true }),
      rec('record', 'ObjectRecord', { optional: true, doc: 'what the delegate recorded beside the data when it was made (absent: made before records, or by a front that sent no owner)' }),
    ],
    ObjectRecord: [
      str('owner'),
      int('sizeGiB', { optional: true }),
      str('snapshotId', { optional: true, doc: 'a volume: the snapshot it was created from' }),
      str('volumeId', { optional: true, doc: 'a snapshot: the volume it copied (absent for one with no source volume)' }),
      str('zone', { optional: true }),
      str('createdAt'),
    ],
    Export: DISK_SOURCE_FIELDS,
    ExportEntry: [
      str('volumeId'),
      str('vmmHost', { optional: true, doc: 'absent when the export is not per host' }),
      str('kind', { doc: 'file, iscsi or rbd (an image some client has open)' }),
      str('iqn', { optional: true }),
      int('tid', { optional: true }),
      int('lun', { optional: true }),
      int('watchers', { optional: true, doc: 'rbd: how many clients have the image open (rbd status)' }),
    ],
  },
  operations: {
    GetCapacity: {
      doc: 'Reports the space this delegate can still provision.',
      input: [],
      output: [str('backend'), long('totalBytes'), long('freeBytes'), long('provisionedBytes')],
    },
    CreateVolume: {
      doc: 'Checks capacity and creates the volume (blank, or from a snapshot); answers when it is made or after a second, the rest going on in the background. state: ready, creating or error. Idempotent.',
      input: [str('volumeId'), int('sizeGiB'), str('snapshotId', { optional: true }), GENERATION, str('owner', { optional: true, doc: 'the owner, kept in the record beside the data (vbs admin rebuild)' }), str('createdAt', { optional: true, doc: 'ISO 8601, kept in the record' }), str('zone', { optional: true, doc: 'the availability zone, kept in the record' })],
      output: [bool('accepted'), str('state', { optional: true }), str('message', { optional: true })],
    },
    CreateSnapshot: {
      doc: 'Checks capacity and copies the volume to a snapshot; answers when it is made or after a second, the rest going on in the background. Idempotent.',
      input: [str('snapshotId'), str('volumeId'), GENERATION, str('owner', { optional: true, doc: 'the owner, kept in the record beside the data (vbs admin rebuild)' }), str('createdAt', { optional: true, doc: 'ISO 8601, kept in the record' }), int('sizeGiB', { optional: true, doc: 'the size the metadata gives the snapshot, kept in the record' })],
      output: [bool('accepted'), str('state', { optional: true }), str('message', { optional: true })],
    },
    WaitObjects: {
      doc: 'Long-poll for finished creates: answers as soon as an object left its in-progress state (ready or error) after the cursor, or after maxWaitMs (at most 25000) with none. reset: the cursor is from another run of this delegate or too old; look at every object in progress. Only reads.',
      input: [str('since', { optional: true, doc: 'the cursor of the last answer; absent the first time' }), int('maxWaitMs', { optional: true })],
      output: [str('cursor'), bool('reset'), rec('object', 'StoredObject', { many: true })],
    },
    DescribeObjects: {
      doc: 'The state of the given volumes and snapshots on this node, each with its record; all of them when none is given.',
      input: [str('id', { many: true })],
      output: [rec('object', 'StoredObject', { many: true })],
    },
    GrowVolume: {
      doc: 'Ensures the volume holds at least sizeGiB (ModifyVolume): a volume already that large is left as it is, a larger one is never shrunk; its data is kept, and an iSCSI export serves the new size. Answers the size it holds. Idempotent.',
      input: [str('volumeId'), int('sizeGiB'), GENERATION],
      output: [long('sizeBytes')],
    },
    DeleteObject: {
      doc: 'Deletes a volume or snapshot if present (and ends any copy in progress). Idempotent.',
      input: [str('id'), GENERATION],
      output: [bool('deleted')],
    },
    ExportVolume: {
      doc: 'Makes a volume reachable from a VMM host. Idempotent. chapSecret: the secret the front proposes for this export\'s CHAP account; an export already in place keeps its own, and the answer names the one in use.',
      input: [str('volumeId'), str('vmmHost'), str('chapSecret', { optional: true }), GENERATION],
      output: [rec('export', 'Export')],
    },
    UnexportVolume: {
      doc: 'Withdraws an export. Idempotent.',
      input: [str('volumeId'), str('vmmHost'), GENERATION],
      output: [bool('return'), bool('fenced', { optional: true, doc: 'true when the target was seen to no longer admit the host (withdrawn, or the host off its ACL with no connection left)' })],
    },
    ListExports: {
      doc: 'Every export this node has in place (targets, for iSCSI). tracked is false for back ends whose exports leave no state (files on a shared file system).',
      input: [],
      output: [bool('tracked'), rec('export', 'ExportEntry', { many: true })],
    },
  },
};
