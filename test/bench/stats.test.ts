import { describe, expect, it } from 'vitest';
import { formatSideBySide, formatTable, jsonReport, latencyRows, percentile, summarize, verdict, type Row } from '../../src/bench/stats.js';

describe('percentile', () => {
  it('is the nearest rank of the sorted samples', () => {
    const samples = [9, 1, 8, 2, 7, 3, 6, 4, 5, 10];
    expect(percentile(samples, 50)).toBe(5);
    expect(percentile(samples, 99)).toBe(10);
    expect(percentile(samples, 0)).toBe(1);
    expect(percentile(samples, 100)).toBe(10);
    expect(percentile([42], 99)).toBe(42);
    expect(percentile([], 50)).toBeNaN();
    const hundred = Array.from({ length: 100 }, (_, i) => 100 - i);
    expect(percentile(hundred, 99)).toBe(99);
    expect(percentile(hundred, 50)).toBe(50);
  });

  it('summarize gives n, p50, p99, mean and max without changing the samples', () => {
    const samples = [3, 1, 2];
    expect(summarize(samples)).toEqual({ n: 3, p50: 2, p99: 3, mean: 2, max: 3 });
    expect(samples).toEqual([3, 1, 2]);
    expect(summarize([]).n).toBe(0);
  });
});

describe('latencyRows', () => {
  it('gives p50 with its target and p99 of the same samples', () => {
    expect(latencyRows('create, concurrency 1', [30, 10, 20], 'creates', { limit: 20, atMost: true })).toEqual([
      { metric: 'create, concurrency 1 p50', value: 20, unit: 'ms', target: { limit: 20, atMost: true }, note: '3 creates' },
      { metric: 'create, concurrency 1 p99', value: 30, unit: 'ms' },
    ]);
  });
});

describe('the report', () => {
  const rows: Row[] = [
    { metric: 'create p50', value: 12.345, unit: 'ms', target: { limit: 20, atMost: true } },
    { metric: 'creates/s', value: 120, unit: '/s', target: { limit: 150, atMost: false }, note: '1200 in 10 s' },
    { metric: 'page p99', value: Number.NaN, unit: 'ms', target: { limit: 60, atMost: true }, note: 'not run' },
    { metric: 'dd p50', value: 1500, unit: 'ms' },
  ];

  it('judges each target: at most for latencies, at least for rates, nothing without a value', () => {
    expect(rows.map(verdict)).toEqual(['met', 'missed', '', '']);
    expect(verdict({ metric: 'x', value: 20, unit: 'ms', target: { limit: 20, atMost: true } })).toBe('met');
  });

  it('prints one aligned table with the target beside each value', () => {
    const lines = formatTable(rows).trimEnd().split('\n');
    expect(lines[0]).toMatch(/^\| metric\s+\| measured\s+\| target\s+\| met\?\s+\| note\s+\|$/);
    expect(lines[2]).toMatch(/^\| create p50 +\| 12\.3 ms +\| ≤ 20 ms +\| met +\| +\|$/);
    expect(lines[3]).toMatch(/\| 120 \/s +\| ≥ 150 \/s +\| missed +\| 1200 in 10 s +\|$/);
    expect(lines[4]).toMatch(/\| n\/a +\| ≤ 60 ms +\| +\| not run/);
    expect(new Set(lines.map((l) => l.length)).size).toBe(1);
  });

  it('writes JSON with the verdicts and null for what was not measured', () => {
    const json = JSON.parse(jsonReport(rows, { machine: 'test' })) as { machine: string; results: { metric: string; value: number | null; verdict?: string }[] };
    expect(json.machine).toBe('test');
    expect(json.results.map((r) => [r.value, r.verdict])).toEqual([[12.345, 'met'], [120, 'missed'], [null, undefined], [1500, undefined]]);
  });
});

describe('formatSideBySide', () => {
  it('puts each metric measured on both engines on one line, SQLite beside PostgreSQL, with their ratio', () => {
    const both: Row[] = [
      { metric: '[sqlite] create p50', value: 100, unit: 'ms' },
      { metric: 'not an engine row', value: 1, unit: 'ms' },
      { metric: '[sqlite] page p50', value: 20, unit: 'ms' },
      { metric: '[postgres] create p50', value: 125, unit: 'ms' },
      { metric: '[postgres] page p50', value: 10, unit: 'ms' },
    ];
    const lines = formatSideBySide(both).trimEnd().split('\n');
    expect(lines[0]).toMatch(/^\| metric +\| SQLite +\| PostgreSQL +\| PostgreSQL \/ SQLite \|$/);
    expect(lines.slice(2)).toHaveLength(2);
    expect(lines[2]).toMatch(/^\| create p50 +\| 100(\.0)? ms +\| 125(\.0)? ms +\| 1\.25× +\|$/);
    expect(lines[3]).toMatch(/^\| page p50 +\| 20(\.0)? ms +\| 10(\.0)? ms +\| 0\.50× +\|$/);
    expect(new Set(lines.map((l) => l.length)).size).toBe(1);
  });
});
