import type { Attachment, Snapshot, Volume } from './records.js';

/** Shown for an empty cell, so every row has the same number of words. */
const EMPTY = '-';
const GAP = '  ';

/**
 * Left-aligned columns separated by two spaces; the last column is not padded,
 * so no line ends in spaces. Rows shorter than the header get empty cells.
 */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const cells = [headers, ...rows].map((row) => headers.map((_, i) => cleanCell(row[i] ?? '')));
  const widths = headers.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  const last = headers.length - 1;
  return cells.map((row) => row.map((cell, i) => (i === last ? cell : cell.padEnd(widths[i]!))).join(GAP)).join('\n') + '\n';
}

/** Records come from the network: never let one move the cursor or change colours. */
function cleanCell(text: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\x00-\x1f\x7f-\x9f]/g, '?');
  return clean === '' ? EMPTY : clean;
}

// OWNER last: an administrator's describe lists every user's records; a user's own shared snapshots name their owner.
export const VOLUME_HEADERS = ['ID', 'SIZE(GiB)', 'STATUS', 'ATTACHMENTS', 'SNAPSHOT', 'COMMENT', 'CREATED', 'OWNER'] as const;
export const SNAPSHOT_HEADERS = ['ID', 'VOLUME', 'SIZE', 'STATUS', 'PROGRESS', 'COMMENT', 'CREATED', 'OWNER'] as const;
export const ATTACHMENT_HEADERS = ['VOLUME', 'VM', 'HOST', 'DEVICE', 'MODE', 'STATUS', 'ATTACHED', 'INSTANCE'] as const;

export function volumesTable(volumes: readonly Volume[]): string {
  return formatTable(
    VOLUME_HEADERS,
    volumes.map((v) => [
      v.volumeId,
      String(v.size),
      v.status,
      (v.attachments ?? []).map(attachmentLabel).join(','),
      v.snapshotId ?? '',
      v.comment ?? '',
      formatTime(v.createTime),
      v.owner,
    ]),
  );
}

export function snapshotsTable(snapshots: readonly Snapshot[]): string {
  return formatTable(
    SNAPSHOT_HEADERS,
    snapshots.map((s) => [
      s.snapshotId,
      s.volumeId,
      String(s.size),
      s.status,
      `${s.progress}%`,
      s.comment ?? '',
      formatTime(s.createTime),
      s.owner,
    ]),
  );
}

export function attachmentTable(a: Attachment): string {
  return formatTable(ATTACHMENT_HEADERS, [[a.volumeId, a.vmId, a.vmmHost, a.device, a.mode, a.status, formatTime(a.attachTime), a.instanceId ?? '']]);
}

/**
 * `vm1@localhost:xvdb(w)`; an attachment still changing says so: `vm1@localhost:xvdb(w,attaching)`;
 * one made by instance id names it first: `i-0a1b2c3d/wrksp-7@node2:xvdb(w)`.
 */
export function attachmentLabel(a: Attachment): string {
  const state = a.status === 'attached' ? a.mode : `${a.mode},${a.status}`;
  return `${a.instanceId ? `${a.instanceId}/` : ''}${a.vmId}@${a.vmmHost}:${a.device}(${state})`;
}

/** ISO 8601 to the second, in UTC: sortable and unambiguous. */
export function formatTime(t: Date | string | undefined): string {
  if (t === undefined) return '';
  const d = t instanceof Date ? t : new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Records as JSON with the WSDL's field names; JSON.stringify writes dates as
 * ISO strings. Two-space indentation, one trailing newline.
 */
export function formatJson(value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n';
}
