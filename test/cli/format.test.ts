import { describe, expect, it } from 'vitest';
import {
  attachmentLabel,
  attachmentTable,
  formatJson,
  formatTable,
  formatTime,
  snapshotsTable,
  volumesTable,
} from '../../src/cli/format.js';
import { attachment, snapshot, volume, VOL, VOL2 } from './fakes.js';

describe('formatTable', () => {
  it('aligns columns with two spaces and leaves no trailing spaces', () => {
    const out = formatTable(['ID', 'NAME', 'X'], [
      ['1', 'short', 'a'],
      ['22222', 'a much longer name', 'bb'],
    ]);
    expect(out).toBe(
      'ID     NAME                X\n' +
        '1      short               a\n' +
        '22222  a much longer name  bb\n',
    );
  });

  it('prints only the header when there are no rows', () => {
    expect(formatTable(['ID', 'STATUS'], [])).toBe('ID  STATUS\n');
  });

  it('shows empty cells as "-" so every row has the same number of columns', () => {
    expect(formatTable(['A', 'B', 'C'], [['x', '', 'z'], ['y']])).toBe('A  B  C\nx  -  z\ny  -  -\n');
  });

  it('replaces control characters so a record cannot drive the terminal', () => {
    expect(formatTable(['C'], [['a\x1b[31mb\nc']])).toBe('C\na?[31mb?c\n');
  });
});

describe('volume, snapshot and attachment tables', () => {
  it('lists volumes with the documented columns and attachment labels', () => {
    const v1 = volume({ status: 'in-use', attachments: [attachment(), attachment({ vmId: 'vm2', device: 'xvdc', mode: 'r', status: 'attaching' })] });
    const v2 = volume({ volumeId: VOL2, size: 100, comment: '', snapshotId: 'snap-0123456789abcdef0', status: 'creating' });
    const lines = volumesTable([v1, v2]).trimEnd().split('\n');
    expect(lines[0]!.split(/\s+/)).toEqual(['ID', 'SIZE(GiB)', 'STATUS', 'ATTACHMENTS', 'SNAPSHOT', 'COMMENT', 'CREATED', 'OWNER']);
    expect(lines[1]!.split(/\s+/)).toEqual([
      VOL,
      '5',
      'in-use',
      'vm1@localhost:xvdb(w),vm2@localhost:xvdc(r,attaching)',
      '-',
      'data',
      '2026-03-01T10:20:30Z',
      'alice',
    ]);
    expect(lines[2]!.split(/\s+/)).toEqual([VOL2, '100', 'creating', '-', 'snap-0123456789abcdef0', '-', '2026-03-01T10:20:30Z', 'alice']);
    // Every column starts at the same offset on every line.
    const createdAt = lines[0]!.indexOf('CREATED');
    expect(lines[1]!.indexOf('2026')).toBe(createdAt);
    expect(lines[2]!.indexOf('2026')).toBe(createdAt);
  });

  it('lists snapshots with progress as a percentage', () => {
    const lines = snapshotsTable([snapshot({ status: 'pending', progress: 42 })]).trimEnd().split('\n');
    expect(lines[0]!.split(/\s+/)).toEqual(['ID', 'VOLUME', 'SIZE', 'STATUS', 'PROGRESS', 'COMMENT', 'CREATED', 'OWNER']);
    expect(lines[1]!.split(/\s+/)).toEqual(['snap-0123456789abcdef0', VOL, '5', 'pending', '42%', 'nightly', '2026-03-01T10:20:30Z', 'alice']);
  });

  it('prints an attachment as a one-row table', () => {
    const lines = attachmentTable(attachment({ mode: 'r' })).trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[1]!.split(/\s+/)).toEqual([VOL, 'vm1', 'localhost', 'xvdb', 'r', 'attached', '2026-03-01T10:20:30Z', '-']);
  });

  it('labels attachments as vm@host:device(mode)', () => {
    expect(attachmentLabel(attachment())).toBe('vm1@localhost:xvdb(w)');
    expect(attachmentLabel(attachment({ status: 'detaching' }))).toBe('vm1@localhost:xvdb(w,detaching)');
  });

  it('names the instance an attachment was asked for, in the table and the label', () => {
    const a = attachment({ vmId: 'wrksp-7', vmmHost: 'node2', instanceId: 'i-0a1b2c3d' });
    expect(attachmentTable(a).trimEnd().split('\n')[1]!.split(/\s+/)).toEqual([VOL, 'wrksp-7', 'node2', 'xvdb', 'w', 'attached', '2026-03-01T10:20:30Z', 'i-0a1b2c3d']);
    expect(attachmentLabel(a)).toBe('i-0a1b2c3d/wrksp-7@node2:xvdb(w)');
  });

  it('formats times as UTC ISO to the second', () => {
    expect(formatTime(new Date('2026-03-01T10:20:30.999Z'))).toBe('2026-03-01T10:20:30Z');
    expect(formatTime(undefined)).toBe('');
  });
});

describe('formatJson', () => {
  it('keeps the WSDL field names and writes dates as ISO strings', () => {
    const v = volume({ snapshotId: 'snap-0123456789abcdef0', attachments: [attachment()] });
    const parsed = JSON.parse(formatJson(v));
    expect(Object.keys(parsed).sort()).toEqual(
      ['attachments', 'comment', 'createTime', 'owner', 'size', 'snapshotId', 'status', 'volumeId'].sort(),
    );
    expect(parsed.createTime).toBe('2026-03-01T10:20:30.456Z');
    expect(Object.keys(parsed.attachments[0]).sort()).toEqual(['attachTime', 'device', 'mode', 'status', 'vmId', 'vmmHost', 'volumeId'].sort());
    expect(parsed.attachments[0].attachTime).toBe('2026-03-01T10:20:30.456Z');
  });

  it('prints an empty list as []', () => {
    expect(formatJson([])).toBe('[]\n');
  });
});
