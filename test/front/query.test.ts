import { describe, expect, it } from 'vitest';
import { VbsError } from '../../src/core/errors.js';
import { decodeToken, encodeToken, filtersHash, parseFilters, parseMaxResults } from '../../src/front/query.js';

const VOL = 'vol-0123456789abcdef0';
const SNAP = 'snap-0123456789abcdef0';
const KEY = { seq: 4711 };

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof VbsError ? err.code : `not a VbsError: ${String(err)}`;
  }
  return 'no error';
}

describe('parseFilters', () => {
  it('checks and normalizes every value; a filter\'s repeated values count once', () => {
    const f = parseFilters(
      'volume',
      [
        { name: 'status', value: ['available', 'in-use', 'available'] },
        { name: 'size', value: ['10', 20] },
        { name: 'attachment.vmmHost', value: ['HostA'] },
        { name: 'commentPrefix', value: ['web '] },
      ],
      { kind: 'owner', owner: 'alice' },
    );
    expect([...f.entries()]).toEqual([
      ['status', ['available', 'in-use']],
      ['size', [10, 20]],
      ['attachment.vmmHost', ['hosta']],
      ['commentPrefix', ['web ']],
    ]);
  });

  it('refuses unknown names, values that fail their check, empty and repeated filters', () => {
    const me = { kind: 'owner', owner: 'alice' } as const;
    expect(codeOf(() => parseFilters('volume', [{ name: 'color', value: ['red'] }], me))).toBe('InvalidParameterValue');
    // Volumes' filters are not snapshots' (size is both since issue 18: EC2's volume-size).
    expect(codeOf(() => parseFilters('snapshot', [{ name: 'availabilityZone', value: ['vbs-1a'] }], me))).toBe('InvalidParameterValue');
    expect(codeOf(() => parseFilters('volume', [{ name: 'tag:', value: ['x'] }], me))).toBe('MissingParameter');
    expect(codeOf(() => parseFilters('volume', [{ name: 'tag:aws:x', value: ['x'] }], me))).toBe('InvalidParameterValue');
    expect(codeOf(() => parseFilters('volume', [{ value: ['x'] }], me))).toBe('InvalidParameterValue');
    expect(codeOf(() => parseFilters('volume', [{ name: 'status', value: ['sleeping'] }], me))).toBe('InvalidParameterValue');
    expect(codeOf(() => parseFilters('volume', [{ name: 'size', value: ['0'] }], me))).toBe('InvalidParameterValue');
    expect(codeOf(() => parseFilters('volume', [{ name: 'snapshotId', value: ['snap-x'] }], me))).toBe('InvalidParameterValue');
    expect(codeOf(() => parseFilters('volume', [{ name: 'attachment.vmId', value: ['-rf'] }], me))).toBe('InvalidParameterValue');
    expect(codeOf(() => parseFilters('volume', [{ name: 'commentPrefix', value: ['a\u0001'] }], me))).toBe('InvalidParameterValue');
    expect(codeOf(() => parseFilters('snapshot', [{ name: 'volumeId', value: [SNAP] }], me))).toBe('InvalidParameterValue');
    expect(codeOf(() => parseFilters('volume', [{ name: 'status', value: [] }], me))).toBe('InvalidParameterValue');
    expect(codeOf(() => parseFilters('volume', [{ name: 'status', value: Array(101).fill('available') }], me))).toBe('InvalidParameterValue');
    expect(codeOf(() => parseFilters('volume', [{ name: 'status', value: ['error'] }, { name: 'status', value: ['available'] }], me))).toBe('InvalidParameterValue');
  });

  it('owner is for administrators only', () => {
    expect(codeOf(() => parseFilters('volume', [{ name: 'owner', value: ['bob'] }], { kind: 'owner', owner: 'alice' }))).toBe('UnauthorizedOperation');
    expect([...parseFilters('snapshot', [{ name: 'owner', value: ['bob'] }], { kind: 'all' }).entries()]).toEqual([['owner', ['bob']]]);
    expect(codeOf(() => parseFilters('volume', [{ name: 'owner', value: ['a\nb'] }], { kind: 'all' }))).toBe('InvalidParameterValue');
  });
});

describe('parseMaxResults', () => {
  it('takes 5 to 1000, or nothing', () => {
    expect(parseMaxResults(undefined)).toBeUndefined();
    expect(parseMaxResults(5)).toBe(5);
    expect(parseMaxResults(1000)).toBe(1000);
    for (const bad of [4, 1001, 0, -5, 5.5, '10']) expect(codeOf(() => parseMaxResults(bad))).toBe('InvalidParameterValue');
  });
});

describe('page tokens', () => {
  const none = new Map();
  const avail = new Map([['status', ['available']]]);

  it('round-trip the key they were made from', () => {
    const hash = filtersHash('volume', avail);
    const token = encodeToken('volume', hash, KEY);
    expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeToken(token, 'volume', hash)).toEqual(KEY);
  });

  it('bind the filters in any order, and only them', () => {
    const a = new Map<string, string[]>([['status', ['available', 'error']], ['commentPrefix', ['x']]]);
    const b = new Map<string, string[]>([['commentPrefix', ['x']], ['status', ['error', 'available']]]);
    expect(filtersHash('volume', a)).toBe(filtersHash('volume', b));
    expect(filtersHash('volume', a)).not.toBe(filtersHash('volume', avail));
    expect(filtersHash('volume', none)).not.toBe(filtersHash('snapshot', none));
    const token = encodeToken('volume', filtersHash('volume', avail), KEY);
    expect(codeOf(() => decodeToken(token, 'volume', filtersHash('volume', none)))).toBe('InvalidParameterValue');
    expect(codeOf(() => decodeToken(token, 'snapshot', filtersHash('volume', avail)))).toBe('InvalidParameterValue');
  });

  it('refuse garbled, forged and oversized tokens', () => {
    const hash = filtersHash('volume', none);
    const forge = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const good = { v: 2, k: 'volume', f: hash, s: KEY.seq };
    for (const bad of [
      '',
      'not a token!',
      'AAAA',
      'x'.repeat(600),
      forge({ ...good, v: 1 }),
      forge({ v: 1, k: 'volume', f: hash, t: '2026-11-30T14:00:00.123Z', i: VOL }), // a version-1 (creation-time) token
      forge({ ...good, s: "1; DROP TABLE volumes" }),
      forge({ ...good, s: -1 }),
      forge({ ...good, s: 1.5 }),
      forge({ ...good, k: 'snapshot' }),
      forge([1, 2]),
      Buffer.from('null').toString('base64url'),
      42,
    ]) {
      expect(codeOf(() => decodeToken(bad, 'volume', hash)), String(bad)).toBe('InvalidParameterValue');
    }
    expect(decodeToken(forge(good), 'volume', hash)).toEqual(KEY);
  });
});
