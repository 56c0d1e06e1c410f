import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/core/free-port.js';
import { UserRegistry } from '../../src/pki/users.js';
import { VBS_SERVICE } from '../../src/services/vbs.js';
import { envelope, type Record as XmlRecord } from '../../src/soap/xml.js';
import { eventually, ROOT, startVbs, type Vbs } from './harness.js';

/**
 * Issue 20's metrics, on one real `vbs up`: each service's exposition passes
 * `promtool check metrics` (its lint included); the counters move for what
 * the test does through the front (requests, workflows, host commands,
 * delegate calls, refused certificates); and a real Prometheus, configured
 * from docs/metrics.md's scrape config and loaded with its alert rules,
 * scrapes the deployment and answers a query for a counter that moved
 * because the test created a volume.
 */
const ROLES = ['front', 'volume-delegate', 'vmm-delegate', 'instance-resolver'] as const;
type Role = (typeof ROLES)[number];

let vbs: Vbs;
let endpoints: Record<Role, string>;
const DOC = readFileSync(join(ROOT, 'docs', 'metrics.md'), 'utf8');
const work = mkdtempSync(join(tmpdir(), 'vbs-metrics-'));

/** The fenced yaml block after `<!-- marker -->` in docs/metrics.md. */
function docBlock(marker: string): string {
  const at = DOC.indexOf(`<!-- ${marker} -->`);
  const m = /```yaml\n([\s\S]*?)```/.exec(DOC.slice(at));
  if (at < 0 || !m) throw new Error(`docs/metrics.md has no yaml block after <!-- ${marker} -->`);
  return m[1]!;
}

async function scrape(role: Role): Promise<string> {
  const res = await fetch(endpoints[role]);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.text();
}

/** The value of one sample (`name{labels}` exactly as served), or undefined when it is not there. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

async function frontSample(series: string): Promise<number | undefined> {
  return sample(await scrape('front'), series);
}

beforeAll(async () => {
  vbs = await startVbs();
  const targets = JSON.parse(readFileSync(join(vbs.dir, 'prometheus-targets.json'), 'utf8')) as { targets: string[]; labels: { role: Role } }[];
  endpoints = Object.fromEntries(targets.map((t) => [t.labels.role, `http://${t.targets[0]}/metrics`])) as Record<Role, string>;
}, 120_000);

afterAll(async () => {
  await vbs?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('metrics of a vbs up deployment', () => {
  it('every service serves them on a loopback listener of its own, named in the targets file and the ready line', () => {
    expect(Object.keys(endpoints).sort()).toEqual([...ROLES].sort());
    for (const role of ROLES) {
      expect(endpoints[role]).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      const cfg = JSON.parse(readFileSync(join(vbs.dir, `${role}.json`), 'utf8')) as { metrics: { host: string; port: number } };
      expect(`http://${cfg.metrics.host}:${cfg.metrics.port}/metrics`).toBe(endpoints[role]);
    }
    expect(new Set(Object.values(endpoints)).size).toBe(ROLES.length);
  });

  it("each service's exposition passes promtool check metrics, lint included", async () => {
    // Something in every family first, so the check sees histograms and labelled series too.
    await vbs.soap().call('DescribeVolumes', {});
    for (const role of ROLES) {
      const text = await scrape(role);
      const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      expect({ role, status: check.status, out: check.stdout + check.stderr }).toEqual({ role, status: 0, out: '' });
      expect(text).toContain('process_cpu_seconds_total');
      expect(text).not.toContain('nodejs_active_handles_total');
    }
  });

  it('each service serves its own families, and only bounded labels', async () => {
    const families = async (role: Role) => new Set([...(await scrape(role)).matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    const front = await families('front');
    for (const f of ['vbs_requests_total', 'vbs_workflows_total', 'vbs_delegate_calls_total', 'vbs_delegate_up', 'vbs_volumes', 'vbs_snapshots', 'vbs_pending_work', 'vbs_parked_work', 'vbs_workflows_running', 'vbs_claims_taken_over_total']) {
      expect(front, f).toContain(f);
    }
    expect(front).not.toContain('vbs_volume_delegate_capacity_bytes');
    const volume = await families('volume-delegate');
    for (const f of ['vbs_requests_total', 'vbs_volume_delegate_capacity_bytes', 'vbs_volume_delegate_free_bytes', 'vbs_volume_delegate_used_bytes', 'vbs_long_poll_waiters']) expect(volume, f).toContain(f);
    expect(volume).not.toContain('vbs_volumes');
    expect(await families('vmm-delegate')).toContain('vbs_requests_total');
    expect(await families('instance-resolver')).toContain('vbs_requests_total');
  });

  it('a created and snapshotted volume moves the front, volume delegate and workflow counters; ids never become labels', async () => {
    const before = await scrape('front');
    const admin = vbs.soap();
    const id = String(((await admin.call('CreateVolume', { size: 1 })).volume as XmlRecord).volumeId);
    await eventually(async () => ((await admin.call('DescribeVolumes', { volumeId: [id] })).volume as XmlRecord[])[0]!.status === 'available' || undefined);
    const snap = String(((await admin.call('CreateSnapshot', { volumeId: id })).snapshot as XmlRecord).snapshotId);
    await eventually(async () => ((await admin.call('DescribeSnapshots', { snapshotId: [snap] })).snapshot as XmlRecord[])[0]!.status === 'completed' || undefined);
    await expect(admin.call('DescribeVolumes', { volumeId: ['vol-00000000000000000'] })).rejects.toMatchObject({ code: 'InvalidVolume.NotFound' });

    const after = await scrape('front');
    const moved = (series: string) => (sample(after, series) ?? 0) - (sample(before, series) ?? 0);
    expect(moved('vbs_requests_total{service="VBS",operation="CreateVolume",code="ok"}')).toBe(1);
    expect(moved('vbs_requests_total{service="VBS",operation="DescribeVolumes",code="InvalidVolume.NotFound"}')).toBe(1);
    expect(moved('vbs_request_duration_seconds_count{service="VBS",operation="CreateVolume",code="ok"}')).toBe(1);
    expect(moved('vbs_workflows_total{kind="CreateVolume",outcome="done"}')).toBe(1);
    expect(moved('vbs_workflows_total{kind="CreateSnapshot",outcome="done"}')).toBe(1);
    expect(moved('vbs_workflow_step_duration_seconds_count{kind="CreateVolume",step="volume-delegate.CreateVolume",outcome="ok"}')).toBe(1);
    expect(moved('vbs_delegate_calls_total{kind="volume",delegate="local",operation="CreateVolume",outcome="ok"}')).toBe(1);
    expect(sample(after, 'vbs_volumes{delegate="local",state="available"}')).toBeGreaterThanOrEqual(1);
    expect(sample(after, 'vbs_snapshots{delegate="local",state="completed"}')).toBeGreaterThanOrEqual(1);
    expect(sample(after, 'vbs_parked_work{work="workflow"}')).toBe(0);
    expect(sample(after, 'vbs_delegate_up{kind="volume",delegate="local"}') ?? (await eventually(() => frontSample('vbs_delegate_up{kind="volume",delegate="local"}')))).toBe(1);

    // The capacity is read at most every 10 s: the reading after the two creates comes within that.
    const provisioned = 'vbs_volume_delegate_provisioned_bytes{delegate="local",backend="file"}';
    const volume = await eventually(async () => {
      const text = await scrape('volume-delegate');
      return (sample(text, provisioned) ?? 0) >= 2 * 1024 ** 3 ? text : undefined;
    }, 30_000, 500);
    expect(sample(volume, 'vbs_host_commands_total{pattern="volume.file.create",exit="0"}')).toBeGreaterThanOrEqual(1);
    expect(sample(volume, 'vbs_host_command_duration_seconds_count{pattern="volume.file.snapshot"}')).toBeGreaterThanOrEqual(1);
    const capacity = sample(volume, 'vbs_volume_delegate_capacity_bytes{delegate="local",backend="file"}')!;
    const used = sample(volume, 'vbs_volume_delegate_used_bytes{delegate="local",backend="file"}')!;
    const free = sample(volume, 'vbs_volume_delegate_free_bytes{delegate="local",backend="file"}')!;
    expect(capacity).toBeGreaterThan(0);
    expect(used + free).toBe(capacity);

    for (const role of ROLES) {
      const text = await scrape(role);
      expect(text).not.toMatch(/vol-[0-9a-f]{17}|snap-[0-9a-f]{17}/);
      expect(text).not.toContain('vbs-admin');
      expect(text).not.toMatch(/BEGIN [A-Z ]*(KEY|CERTIFICATE)/);
    }
  });

  it('an operation a caller made up is counted as unknown, not as a label of its own', async () => {
    const before = (await frontSample('vbs_requests_total{service="VBS",operation="unknown",code="InvalidParameterValue"}')) ?? 0;
    const answer = await post(envelope(VBS_SERVICE.namespace, '<tns:MadeUpOperation12345/>'), vbs.dir);
    expect(answer).toContain('InvalidParameterValue');
    const text = await scrape('front');
    expect(sample(text, 'vbs_requests_total{service="VBS",operation="unknown",code="InvalidParameterValue"}')).toBe(before + 1);
    expect(text).not.toContain('MadeUpOperation12345');
  });

  it('callers without a certificate and revoked callers are counted as TLS refusals', async () => {
    const series = (reason: string) => `vbs_tls_refusals_total{service="VBS",reason="${reason}"}`;
    const before = await scrape('front');
    expect(await post(envelope(VBS_SERVICE.namespace, '<tns:DescribeVolumes/>'), undefined)).toContain('AuthFailure');

    const users = new UserRegistry(vbs.dir);
    const rita = await users.add('rita', false);
    await users.revoke('rita');
    // The CRL reaches the front within moments (it watches the file); until then rita is still served.
    await eventually(async () => ((await post(envelope(VBS_SERVICE.namespace, '<tns:DescribeVolumes/>'), vbs.dir, { key: rita.keyPem!, cert: rita.certPem })).includes('AuthFailure') ? true : undefined), 15_000);

    const after = await scrape('front');
    expect((sample(after, series('no_certificate')) ?? 0) - (sample(before, series('no_certificate')) ?? 0)).toBe(1);
    expect(sample(after, series('revoked'))).toBeGreaterThanOrEqual(1);
    expect(sample(after, 'vbs_revoked_callers_refused_total{service="VBS",how="request"}')).toBe(sample(after, series('revoked')));
    expect(after).not.toContain('rita');
  });

  it('the documented alert rules and scrape config pass promtool', () => {
    writeFileSync(join(work, 'rules.yml'), docBlock('alert-rules'));
    const rules = spawnSync('promtool', ['check', 'rules', join(work, 'rules.yml')], { encoding: 'utf8' });
    expect(rules.stdout + rules.stderr).toContain('SUCCESS: 3 rules found');
    expect(rules.status).toBe(0);
    writeFileSync(join(work, 'prometheus.yml'), prometheusConfig());
    const config = spawnSync('promtool', ['check', 'config', join(work, 'prometheus.yml')], { encoding: 'utf8' });
    expect({ status: config.status, out: config.stdout + config.stderr }).toMatchObject({ status: 0 });
  });

  it('the documented alert rules fire when they should and not before (promtool test rules)', () => {
    // Annotations are left out of the copy under test: promtool compares them whole, and check rules checked their templates.
    writeFileSync(join(work, 'bare-rules.yml'), withoutAnnotations(docBlock('alert-rules')));
    writeFileSync(join(work, 'rules-test.yml'), RULES_TEST);
    const r = spawnSync('promtool', ['test', 'rules', 'rules-test.yml'], { cwd: work, encoding: 'utf8' });
    expect({ status: r.status, out: r.stdout + r.stderr }).toMatchObject({ status: 0, out: expect.stringContaining('SUCCESS') });
  });

  it('a real Prometheus scrapes the deployment and sees the create counter move', async () => {
    const port = await freePort();
    writeFileSync(join(work, 'rules.yml'), docBlock('alert-rules'));
    writeFileSync(join(work, 'prometheus.yml'), prometheusConfig());
    const prom = startPrometheus(port);
    try {
      const api = `http://127.0.0.1:${port}/api/v1`;
      const query = async (q: string) => {
        const r = (await (await fetch(`${api}/query?query=${encodeURIComponent(q)}`)).json()) as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
        expect(r.status).toBe('success');
        return r.data.result;
      };
      await eventually(async () => {
        try {
          return (await fetch(`http://127.0.0.1:${port}/-/ready`)).ok || undefined;
        } catch {
          return undefined; // not listening yet
        }
      }, 60_000, 250);
      // Every service is a healthy target, labelled with its role.
      await eventually(async () => ((await query('up{job="vbs"} == 1')).length === ROLES.length ? true : undefined), 60_000, 250);
      expect((await query('up{job="vbs"}')).map((r) => r.metric.role).sort()).toEqual([...ROLES].sort());
      // The create counter as Prometheus last saw it, then a volume created, then the counter seen higher.
      const series = 'vbs_workflows_total{job="vbs",role="front",kind="CreateVolume",outcome="done"}';
      const seen = async () => {
        const r = await query(series);
        return r.length ? Number(r[0]!.value[1]) : undefined;
      };
      const before = await eventually(seen, 30_000, 250);
      const admin = vbs.soap();
      const id = String(((await admin.call('CreateVolume', { size: 1 })).volume as XmlRecord).volumeId);
      await eventually(async () => ((await admin.call('DescribeVolumes', { volumeId: [id] })).volume as XmlRecord[])[0]!.status === 'available' || undefined);
      const after = await eventually(async () => {
        const v = await seen();
        return v !== undefined && v > before ? v : undefined;
      }, 30_000, 250);
      expect(after).toBe(before + 1);
      const requests = await query('vbs_requests_total{role="front",operation="CreateVolume",code="ok"}');
      expect(Number(requests[0]!.value[1])).toBeGreaterThanOrEqual(1);
      // The documented rules loaded and evaluate; none of them fires on this healthy deployment.
      const rules = (await (await fetch(`${api}/rules`)).json()) as { data: { groups: { rules: { name: string; health: string; state: string }[] }[] } };
      const loaded = rules.data.groups.flatMap((g) => g.rules);
      expect(loaded.map((r) => r.name).sort()).toEqual(['VbsDelegateDown', 'VbsParkedWork', 'VbsVolumeDelegateFull']);
      await eventually(async () => {
        const r = (await (await fetch(`${api}/rules`)).json()) as typeof rules;
        return r.data.groups.flatMap((g) => g.rules).every((x) => x.health === 'ok') ? true : undefined;
      }, 30_000, 250);
      expect((await query('ALERTS')).filter((a) => a.metric.alertstate === 'firing')).toEqual([]);
    } finally {
      await stop(prom);
    }
  });
});

/** A rules file without its annotations blocks. */
function withoutAnnotations(yaml: string): string {
  const out: string[] = [];
  let skipDeeperThan: number | undefined;
  for (const line of yaml.split('\n')) {
    const indent = line.length - line.trimStart().length;
    if (skipDeeperThan !== undefined && (line.trim() === '' || indent > skipDeeperThan)) continue;
    skipDeeperThan = undefined;
    if (line.trim() === 'annotations:') skipDeeperThan = indent;
    else out.push(line);
  }
  return out.join('\n');
}

/**
 * Series for each alert: parked work from minute 1 (fires after its 5 minutes),
 * a VMM delegate the front cannot probe and a volume delegate Prometheus cannot
 * scrape (both fire after 2 minutes), a volume delegate at 85 % then 95 % full
 * (fires 10 minutes after passing 90 %, never at 85 %).
 */
const RULES_TEST = `rule_files: [bare-rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'vbs_parked_work{job="vbs",role="front",work="undo"}'
        values: '0 1x20'
      - series: 'vbs_parked_work{job="vbs",role="front",work="workflow"}'
        values: '0x20'
      - series: 'vbs_delegate_up{job="vbs",role="front",kind="vmm",delegate="hv1"}'
        values: '1 0x20'
      - series: 'vbs_delegate_up{job="vbs",role="front",kind="volume",delegate="local"}'
        values: '1x20'
      - series: 'up{job="vbs",role="volume-delegate",instance="127.0.0.1:9464"}'
        values: '1 0x20'
      - series: 'up{job="vbs",role="front",instance="127.0.0.1:9465"}'
        values: '1x20'
      - series: 'vbs_volume_delegate_used_bytes{job="vbs",role="volume-delegate",delegate="local",backend="file"}'
        values: '85x10 95x20'
      - series: 'vbs_volume_delegate_capacity_bytes{job="vbs",role="volume-delegate",delegate="local",backend="file"}'
        values: '100x30'
    alert_rule_test:
      - eval_time: 5m
        alertname: VbsParkedWork
      - eval_time: 7m
        alertname: VbsParkedWork
        exp_alerts:
          - exp_labels: { severity: warning }
      - eval_time: 2m
        alertname: VbsDelegateDown
      - eval_time: 4m
        alertname: VbsDelegateDown
        exp_alerts:
          - exp_labels: { severity: critical, job: vbs, role: front, kind: vmm, delegate: hv1 }
          - exp_labels: { severity: critical, job: vbs, role: volume-delegate, instance: '127.0.0.1:9464' }
      - eval_time: 10m
        alertname: VbsVolumeDelegateFull
      - eval_time: 19m
        alertname: VbsVolumeDelegateFull
      - eval_time: 22m
        alertname: VbsVolumeDelegateFull
        exp_alerts:
          - exp_labels: { severity: warning, job: vbs, role: volume-delegate, delegate: local, backend: file }
`;

/** docs/metrics.md's scrape config, pointed at this deployment's targets file, scraping fast, with the documented rules. */
function prometheusConfig(): string {
  const scrape = docBlock('scrape-config')
    .replace('/home/me/vbs-data/prometheus-targets.json', join(vbs.dir, 'prometheus-targets.json'))
    .replace('scrape_interval: 15s', 'scrape_interval: 1s');
  return `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [${join(work, 'rules.yml')}]\n${scrape}`;
}

/** Prometheus on loopback only, its data in the test's own folder. */
function startPrometheus(port: number): ChildProcess {
  const child = spawn(
    'prometheus',
    [`--config.file=${join(work, 'prometheus.yml')}`, `--storage.tsdb.path=${join(work, 'tsdb')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  child.once('exit', (code, signal) => {
    if (code !== 0 && signal !== 'SIGTERM') process.stderr.write(`prometheus exited (${code ?? signal}): ${log}\n`);
  });
  return child;
}

/** Stops the process this test started, by its PID, and waits until it is gone. */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  process.kill(child.pid!, 'SIGTERM');
  const timer = setTimeout(() => child.pid && process.kill(child.pid, 'SIGKILL'), 20_000);
  await gone;
  clearTimeout(timer);
}

/** One raw SOAP POST to the front as the admin (dir given), as another identity, or with no certificate (dir undefined). */
function post(body: string, dir: string | undefined, who?: { key: string; cert: string }): Promise<string> {
  const pem = (f: string) => readFileSync(join(vbs.dir, 'pki', f), 'utf8');
  const identity = who ?? (dir ? { key: pem('admin.key'), cert: pem('admin.crt') } : {});
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      vbs.url,
      { method: 'POST', agent: false, ca: pem('ca.crt'), ...identity, headers: { 'content-type': 'text/xml; charset=utf-8', 'content-length': Buffer.byteLength(body) }, timeout: 20_000 },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () => resolve(text));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(body);
  });
}
