import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Every Prometheus metric VBS serves (issue 20), defined in one place; the
 * code that moves them calls the small hooks below, one line at each site.
 * docs/metrics.md lists them for operators.
 *
 * One registry per process: each VBS service runs in a process of its own
 * (`vbs serve ROLE`), so a scrape of its listener (src/core/metrics-listener.ts)
 * sees that service alone. Labels only ever take bounded values: operation
 * names from the service tables, fault codes from the error registry, pattern
 * keys from commands.properties, delegate names from the configuration, and
 * states from src/core/states.ts. Never an id, a user name or a message.
 */
export const registry = new Registry();

const SECONDS_FAST = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const SECONDS_SLOW = [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

const requests = new Counter({
  name: 'vbs_requests_total',
  help: 'SOAP requests answered, by service, operation and answer (ok, a fault code, or http_<status> for an answer that is not SOAP).',
  labelNames: ['service', 'operation', 'code'] as const,
  registers: [registry],
});
const requestSeconds = new Histogram({
  name: 'vbs_request_duration_seconds',
  help: 'Time from a SOAP request arriving to its answer, by service, operation and answer.',
  labelNames: ['service', 'operation', 'code'] as const,
  buckets: SECONDS_FAST,
  registers: [registry],
});
const tlsRefusals = new Counter({
  name: 'vbs_tls_refusals_total',
  help: 'Callers refused for their TLS identity: failed handshakes, no or untrusted certificate, expired, not yet valid, revoked, or over the cap of connections without one.',
  labelNames: ['service', 'reason'] as const,
  registers: [registry],
});
const revokedRefused = new Counter({
  name: 'vbs_revoked_callers_refused_total',
  help: 'Requests refused because the caller\'s certificate is revoked (how="request"), and open connections of revoked certificates cut when a new CRL arrived (how="connection_cut").',
  labelNames: ['service', 'how'] as const,
  registers: [registry],
});
const workflows = new Counter({
  name: 'vbs_workflows_total',
  help: 'Workflows that ended an attempt, by kind and outcome: done, failed (refused or rolled back), stalled (to be retried), rolled_back (after a restart or a lost runner).',
  labelNames: ['kind', 'outcome'] as const,
  registers: [registry],
});
const stepSeconds = new Histogram({
  name: 'vbs_workflow_step_duration_seconds',
  help: 'Time each workflow step took, by workflow kind, step and outcome (ok or failed).',
  labelNames: ['kind', 'step', 'outcome'] as const,
  buckets: SECONDS_SLOW,
  registers: [registry],
});
const claimsTakenOver = new Counter({
  name: 'vbs_claims_taken_over_total',
  help: 'Work claimed from another runner whose lease had run out or which had stopped (a front that died mid-workflow), by work (workflow or undo).',
  labelNames: ['work'] as const,
  registers: [registry],
});
const delegateCalls = new Counter({
  name: 'vbs_delegate_calls_total',
  help: 'Calls from the front to its delegates, by kind (volume, vmm), delegate, operation and outcome (ok or a fault code; ServiceUnavailable when it could not be reached).',
  labelNames: ['kind', 'delegate', 'operation', 'outcome'] as const,
  registers: [registry],
});
const delegateSeconds = new Histogram({
  name: 'vbs_delegate_call_duration_seconds',
  help: 'Time each delegate call took, retries of undelivered attempts included, by kind, delegate and operation.',
  labelNames: ['kind', 'delegate', 'operation'] as const,
  buckets: SECONDS_FAST,
  registers: [registry],
});
const delegateUp = new Gauge({
  name: 'vbs_delegate_up',
  help: "1 when the delegate answered the front's last health probe, 0 when it did not; by kind (volume, vmm) and delegate.",
  labelNames: ['kind', 'delegate'] as const,
  registers: [registry],
});
const hostCommands = new Counter({
  name: 'vbs_host_commands_total',
  help: 'Host commands run, by pattern key of commands.properties and how they ended: the exit status, timeout, a signal name, or not_started.',
  labelNames: ['pattern', 'exit'] as const,
  registers: [registry],
});
const hostCommandSeconds = new Histogram({
  name: 'vbs_host_command_duration_seconds',
  help: 'Time each host command ran (its wait for a free slot excluded), by pattern key.',
  labelNames: ['pattern'] as const,
  buckets: SECONDS_SLOW,
  registers: [registry],
});
/** Served only by the service it is about (see registerOnce): a volume delegate's gauges, a front's. */
const longPollWaiters = new Gauge({
  name: 'vbs_long_poll_waiters',
  help: 'Requests held open on this volume delegate waiting for a volume or snapshot to finish (WaitObjects, and creates awaiting their quick answer).',
  registers: [],
});

/** Adds metrics to the registry the first time the service they are about starts in this process. */
function registerOnce(metrics: readonly Gauge<string>[]): void {
  for (const m of metrics) if (!registry.getSingleMetric((m as unknown as { name: string }).name)) registry.registerMetric(m);
}

/** A stopwatch: call it to read the seconds since it was made. */
export function stopwatch(): () => number {
  const start = process.hrtime.bigint();
  return () => Number(process.hrtime.bigint() - start) / 1e9;
}

/** What the SOAP server knows of an answered request (src/soap/server.ts RequestOutcome). */
export interface AnsweredRequest {
  readonly operation?: string;
  readonly fault?: string;
  readonly httpStatus?: number;
}

/** A SOAP service starts: each of its operations is served at 0 until used, so the first request is an increase Prometheus sees. */
export function serviceOperations(service: string, operations: object): void {
  for (const operation of Object.keys(operations)) requests.inc({ service, operation, code: 'ok' }, 0);
}

/** A workflow kind is registered: its `done` count is served at 0 from the start. */
export function workflowKind(kind: string): void {
  workflows.inc({ kind, outcome: 'done' }, 0);
}

/** A SOAP request was answered. `operations`: the service's table, so a name a caller made up is `unknown`, not a label of its own. */
export function requestAnswered(service: string, operations: object, r: AnsweredRequest, seconds: number | undefined): void {
  const operation = r.operation === undefined ? 'none' : Object.prototype.hasOwnProperty.call(operations, r.operation) ? r.operation : 'unknown';
  const code = r.fault ?? (r.httpStatus !== undefined ? `http_${r.httpStatus}` : 'ok');
  requests.inc({ service, operation, code });
  if (seconds !== undefined) requestSeconds.observe({ service, operation, code }, seconds);
}

export type TlsRefusal = 'handshake_failed' | 'no_certificate' | 'expired' | 'not_yet_valid' | 'revoked' | 'too_many_anonymous';

export function tlsRefused(service: string, reason: TlsRefusal): void {
  tlsRefusals.inc({ service, reason });
  if (reason === 'revoked') revokedRefused.inc({ service, how: 'request' });
}

export function revokedConnectionCut(service: string): void {
  revokedRefused.inc({ service, how: 'connection_cut' });
}

export type WorkflowOutcome = 'done' | 'failed' | 'stalled' | 'rolled_back';

export function workflowEnded(kind: string, outcome: WorkflowOutcome): void {
  workflows.inc({ kind, outcome });
}

export function stepTimed(kind: string, step: string, ok: boolean, seconds: number): void {
  stepSeconds.observe({ kind, step, outcome: ok ? 'ok' : 'failed' }, seconds);
}

export function claimTakenOver(work: 'workflow' | 'undo'): void {
  claimsTakenOver.inc({ work });
}

export function delegateCalled(kind: 'volume' | 'vmm', delegate: string, operation: string, outcome: string, seconds: number): void {
  delegateCalls.inc({ kind, delegate, operation, outcome });
  delegateSeconds.observe({ kind, delegate, operation }, seconds);
}

export function delegateProbed(kind: 'volume' | 'vmm', delegate: string, up: boolean): void {
  delegateUp.set({ kind, delegate }, up ? 1 : 0);
}

/** A host command ended (src/commands/runner.ts). */
export function hostCommandRan(pattern: string, r: { exitCode?: number; signal?: string; timedOut: boolean }, seconds: number): void {
  const exit = r.timedOut ? 'timeout' : r.exitCode !== undefined ? String(r.exitCode) : (r.signal ?? 'not_started');
  hostCommands.inc({ pattern, exit });
  hostCommandSeconds.observe({ pattern }, seconds);
}

export function longPollWaiting(delta: 1 | -1): void {
  longPollWaiters.inc(delta);
}

// ------------------------------------------------------------------ gauges read on scrape

/** What a front's metadata holds now (src/db/gauges.ts): read on each scrape. */
export interface MetadataCounts {
  /** [volume delegate, state, count] */
  readonly volumes: readonly (readonly [string, string, number])[];
  readonly snapshots: readonly (readonly [string, string, number])[];
  /** Work waiting to be retried (not parked), and work given up on (parked), by workflow or undo. */
  readonly pending: { readonly workflow: number; readonly undo: number };
  readonly parked: { readonly workflow: number; readonly undo: number };
  readonly running: number;
}

const metadataSources = new Set<() => MetadataCounts>();
/** One reading of the metadata (and of the capacity, below) serves every gauge of a scrape (see scrape()); outside one, each reads afresh. */
let scrapes = 0;
let scrapeCounts: MetadataCounts[] | undefined;

function currentCounts(): MetadataCounts[] {
  const read = () => [...metadataSources].map((source) => source());
  if (scrapes === 0) return read();
  return (scrapeCounts ??= read());
}

/** The exposition of every metric, the metadata read once for all of its gauges. */
export async function scrape(): Promise<string> {
  scrapes++;
  try {
    return await registry.metrics();
  } finally {
    if (--scrapes === 0) [scrapeCounts, scrapeCapacity] = [undefined, undefined];
  }
}

const METADATA_GAUGES: Gauge<string>[] = [];
/** A gauge filled from the metadata on each scrape, summed over the fronts of this process (one, outside tests). */
function metadataGauge(name: string, help: string, labelNames: readonly string[], fill: (c: MetadataCounts, add: (labels: Record<string, string>, n: number) => void) => void): void {
  METADATA_GAUGES.push(
    new Gauge({
      name,
      help,
      labelNames,
      registers: [],
      collect() {
        this.reset();
        for (const c of currentCounts()) fill(c, (labels, n) => this.inc(labels, n));
      },
    }),
  );
}
metadataGauge('vbs_volumes', 'Volumes in the metadata, by the volume delegate (back end) that stores them and state.', ['delegate', 'state'], (c, add) =>
  c.volumes.forEach(([delegate, state, n]) => add({ delegate, state }, n)),
);
metadataGauge('vbs_snapshots', 'Snapshots in the metadata, by the volume delegate (back end) that stores them and state.', ['delegate', 'state'], (c, add) =>
  c.snapshots.forEach(([delegate, state, n]) => add({ delegate, state }, n)),
);
metadataGauge('vbs_pending_work', 'Unfinished work nobody runs right now, waiting for its next retry: stalled workflows and undos that failed (parked work excluded).', ['work'], (c, add) =>
  (['workflow', 'undo'] as const).forEach((w) => add({ work: w }, c.pending[w])),
);
metadataGauge('vbs_parked_work', 'Work VBS gave up retrying (its resource is in error) until `vbs admin check --repair` or a request on the resource resumes it.', ['work'], (c, add) =>
  (['workflow', 'undo'] as const).forEach((w) => add({ work: w }, c.parked[w])),
);
metadataGauge('vbs_workflows_running', 'Workflows journaled and not finished: in progress, stalled or parked.', [], (c, add) => add({}, c.running));

/** Registers a front's metadata to be counted on each scrape; returns the call that stops it. */
export function countMetadata(source: () => MetadataCounts): () => void {
  registerOnce(METADATA_GAUGES);
  metadataSources.add(source);
  return () => metadataSources.delete(source);
}

/** A volume delegate's space (src/delegates/volume/backend.ts Capacity). */
export interface CapacityReading {
  readonly backend: string;
  readonly totalBytes: number;
  readonly freeBytes: number;
  readonly provisionedBytes: number;
}

const capacitySources = new Map<string, () => Promise<CapacityReading | undefined>>();

let scrapeCapacity: Promise<Map<string, CapacityReading | undefined>> | undefined;

/** Every source's reading, once per scrape like the metadata: the four gauges never wait for four readings. */
function currentCapacity(): Promise<Map<string, CapacityReading | undefined>> {
  const read = async () => new Map(await Promise.all([...capacitySources].map(async ([delegate, source]) => [delegate, await source()] as const)));
  if (scrapes === 0) return read();
  return (scrapeCapacity ??= read());
}

const CAPACITY_GAUGES: Gauge<string>[] = [];
function capacityGauge(name: string, help: string, value: (c: CapacityReading) => number): void {
  CAPACITY_GAUGES.push(
    new Gauge({
      name,
      help,
      labelNames: ['delegate', 'backend'] as const,
      registers: [],
      async collect() {
        const readings = await currentCapacity();
        this.reset();
        for (const [delegate, c] of readings) if (c) this.set({ delegate, backend: c.backend }, value(c));
      },
    }),
  );
}
capacityGauge('vbs_volume_delegate_capacity_bytes', 'Bytes this volume delegate may provision in all (its reserve and capacityGiB applied).', (c) => c.totalBytes);
capacityGauge('vbs_volume_delegate_free_bytes', 'Bytes this volume delegate can still provision.', (c) => c.freeBytes);
capacityGauge('vbs_volume_delegate_used_bytes', 'Bytes of its capacity no longer free (capacity minus free): the 90 % alert divides this by the capacity.', (c) => Math.max(0, c.totalBytes - c.freeBytes));
capacityGauge('vbs_volume_delegate_provisioned_bytes', 'Bytes provisioned to volumes and snapshots on this volume delegate.', (c) => c.provisionedBytes);

/** Registers a volume delegate's capacity, read on each scrape; returns the call that stops it. */
export function reportCapacity(delegate: string, read: () => Promise<CapacityReading | undefined>): () => void {
  registerOnce([...CAPACITY_GAUGES, longPollWaiters]);
  capacitySources.set(delegate, read);
  return () => capacitySources.delete(delegate);
}

// ------------------------------------------------------------------ process metrics

/**
 * prom-client's process_* and nodejs_* metrics, added once a process serves
 * metrics. Three of them are gauges named *_total, which `promtool check
 * metrics` rejects (non-counter metrics should not have "_total" suffix):
 * they are left out.
 */
const LINT_REJECTED = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];
let processMetrics = false;

export function addProcessMetrics(): void {
  if (processMetrics) return;
  processMetrics = true;
  collectDefaultMetrics({ register: registry });
  for (const name of LINT_REJECTED) registry.removeSingleMetric(name);
}
