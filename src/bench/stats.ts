/**
 * The control-plane bench's arithmetic and report: percentiles of latency
 * samples, each result beside its target (met or missed), as one table and
 * as JSON. Kept apart from the run itself so it can be tested as units.
 */

export interface Summary {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly mean: number;
  readonly max: number;
}

/** Nearest-rank percentile (p in 0-100) of unsorted samples; NaN when there are none. */
export function percentile(samples: readonly number[], p: number): number {
  if (!samples.length) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export function summarize(samples: readonly number[]): Summary {
  const n = samples.length;
  return {
    n,
    p50: percentile(samples, 50),
    p99: percentile(samples, 99),
    mean: n ? samples.reduce((a, b) => a + b, 0) / n : Number.NaN,
    max: n ? Math.max(...samples) : Number.NaN,
  };
}

/** A target: the value must be at most (latency, memory) or at least (rates) the limit. */
export interface Target {
  readonly limit: number;
  readonly atMost: boolean;
}

export interface Row {
  /** What was measured, e.g. "create→available p50, concurrency 1". */
  readonly metric: string;
  readonly value: number;
  readonly unit: string;
  readonly target?: Target;
  /** Why a row has no value, or what to know when reading it. */
  readonly note?: string;
}

/** A latency's two rows, p50 (with its target, if any) and p99, from its samples. */
export function latencyRows(metric: string, samples: readonly number[], what: string, p50Target?: Target): Row[] {
  const s = summarize(samples);
  return [
    { metric: `${metric} p50`, value: s.p50, unit: 'ms', target: p50Target, note: `${s.n} ${what}` },
    { metric: `${metric} p99`, value: s.p99, unit: 'ms' },
  ];
}

export type Verdict = 'met' | 'missed' | '';

export function verdict(row: Row): Verdict {
  if (!row.target || Number.isNaN(row.value)) return '';
  return (row.target.atMost ? row.value <= row.target.limit : row.value >= row.target.limit) ? 'met' : 'missed';
}

function shown(value: number, unit: string): string {
  if (Number.isNaN(value)) return 'n/a';
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${unit}`;
}

/** One plain-text table: metric, measured, target, met/missed, note. */
export function formatTable(rows: readonly Row[]): string {
  const cells = rows.map((r) => [
    r.metric,
    shown(r.value, r.unit),
    r.target ? `${r.target.atMost ? '≤' : '≥'} ${r.target.limit} ${r.unit}` : '',
    verdict(r),
    r.note ?? '',
  ]);
  const header = ['metric', 'measured', 'target', 'met?', 'note'];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: readonly string[]) => `| ${c.map((x, i) => x.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.map(line)].join('\n') + '\n';
}

/** The JSON report: the rows with their verdicts, and what the run was. */
export function jsonReport(rows: readonly Row[], about: Readonly<Record<string, unknown>>): string {
  const results = rows.map((r) => ({ ...r, value: Number.isNaN(r.value) ? null : r.value, verdict: verdict(r) || undefined }));
  return `${JSON.stringify({ ...about, results }, null, 2)}\n`;
}

/**
 * Rows measured once per metadata engine (`[sqlite] …`, `[postgres] …`) as
 * one table, the engines side by side, and PostgreSQL's figure over SQLite's.
 */
export function formatSideBySide(rows: readonly Row[]): string {
  const byMetric = new Map<string, { sqlite?: Row; postgres?: Row }>();
  for (const r of rows) {
    const m = /^\[(sqlite|postgres)\] (.*)$/.exec(r.metric);
    if (!m) continue;
    const entry = byMetric.get(m[2]!) ?? {};
    entry[m[1] as 'sqlite' | 'postgres'] = r;
    byMetric.set(m[2]!, entry);
  }
  const cell = (r?: Row) => (r ? shown(r.value, r.unit) : '');
  const cells = [...byMetric].map(([metric, e]) => [
    metric,
    cell(e.sqlite),
    cell(e.postgres),
    e.sqlite && e.postgres && e.sqlite.value > 0 ? `${(e.postgres.value / e.sqlite.value).toFixed(2)}×` : '',
  ]);
  const header = ['metric', 'SQLite', 'PostgreSQL', 'PostgreSQL / SQLite'];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: readonly string[]) => `| ${c.map((x, i) => x.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.map(line)].join('\n') + '\n';
}
