import Database from 'better-sqlite3';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { SoapClient } from '../../../src/soap/client.js';
import type { Record as XmlRecord } from '../../../src/soap/xml.js';
import { ROOT } from '../harness.js';

/**
 * What the lvm-iscsi end-to-end tests look at, read from the real parts of a
 * deployment rather than from the front: the simulated host (`hostsim dump`:
 * VG, IET, initiator nodes and sessions, VM disks), the deployment's own tgtd
 * (`tgtadm --op show`), the volume delegate's export bookkeeping, and the
 * metadata as a user sees it (DescribeVolumes / DescribeSnapshots).
 */

export const HOSTSIM = join(ROOT, 'dist', 'sim', 'hostsim.js');
export const IQN_PREFIX = 'iqn.2026-11.org.vbs';
export const GiB = 1024 ** 3;

/** A running deployment, however it was started. */
export interface Site {
  readonly dir: string;
  cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** An admin SOAP client for describing (kept open for the deployment's life). */
  readonly api: SoapClient;
}

export interface BackendConfig {
  readonly target: 'iet' | 'tgt';
  readonly portal: string;
  readonly tgtControlPort?: number;
  readonly simState: string;
  readonly stateDir: string;
}

/** The lvm-iscsi backend the deployment configured (volume-delegate.json), paths made absolute. */
export function backendOf(dir: string): BackendConfig {
  const cfg = JSON.parse(readFileSync(join(dir, 'volume-delegate.json'), 'utf8')) as { backend: BackendConfig & { type: string } };
  if (cfg.backend.type !== 'lvm-iscsi') throw new Error(`${dir} does not run the lvm-iscsi back end`);
  return { ...cfg.backend, simState: join(dir, cfg.backend.simState), stateDir: join(dir, cfg.backend.stateDir) };
}

export function hostsim(simState: string, ...args: string[]): string {
  return execFileSync(process.execPath, [HOSTSIM, '--state', simState, ...args], { encoding: 'utf8' });
}

interface SimDump {
  vms: { name: string; disks: { dev: string; target: string; mode: string; kind: string }[] }[];
  vgs: { name: string; extentSize: number; lvs: { name: string; extents: number; origin?: string; backing: string }[] }[];
  iet: { targets: { tid: number; name: string; luns: { lun: number; path: string }[] }[] };
  iscsi: { nodes: { iqn: string; portal: string }[]; sessions: { iqn: string; portal: string }[] };
}

export function simDump(simState: string): SimDump {
  return JSON.parse(hostsim(simState, 'dump')) as SimDump;
}

/** A target as its daemon lists it; tgt's ACL is kept (an unbound target lets nobody in). */
export interface TargetView {
  tid: number;
  iqn: string;
  luns: { lun: number; path: string }[];
  acl?: string[];
}

/** `tgtadm --op show --mode target` of the deployment's tgtd, read independently of the delegate's parser. */
export function tgtTargets(controlPort: number): TargetView[] {
  const out = execFileSync('tgtadm', ['-C', String(controlPort), '--lld', 'iscsi', '--op', 'show', '--mode', 'target'], { encoding: 'utf8' });
  const targets: TargetView[] = [];
  let section = '';
  let lun: { lun: number; path: string } | undefined;
  for (const line of out.split('\n')) {
    const t = /^Target (\d+): (\S+)/.exec(line);
    const current = targets[targets.length - 1];
    if (t) targets.push({ tid: Number(t[1]), iqn: t[2]!, luns: [], acl: [] });
    else if (/^ {4}\S/.test(line)) section = line.trim();
    else if (current && section === 'LUN information:') {
      const l = /^\s+LUN: (\d+)$/.exec(line);
      const p = /^\s+Backing store path: (.*)$/.exec(line);
      if (l) lun = { lun: Number(l[1]), path: '' };
      if (l && lun && lun.lun !== 0) current.luns.push(lun);
      if (p && lun) lun.path = p[1]!.trim();
    } else if (current && section === 'ACL information:' && line.trim()) current.acl!.push(line.trim());
  }
  return targets;
}

/** The targets of whichever daemon the deployment exports on. */
export function targetsOf(b: BackendConfig, dump = simDump(b.simState)): TargetView[] {
  const list =
    b.target === 'tgt'
      ? tgtTargets(b.tgtControlPort!)
      : dump.iet.targets.map((t) => ({ tid: t.tid, iqn: t.name, luns: t.luns.map((l) => ({ lun: l.lun, path: l.path })) }));
  return list.sort((a, b2) => a.iqn.localeCompare(b2.iqn));
}

/** The file behind an LV of the simulated VG (what dd copies and the target serves). */
export function lvFile(b: BackendConfig, lv: string, dump = simDump(b.simState)): string | undefined {
  const found = dump.vgs.flatMap((vg) => vg.lvs).find((l) => l.name === lv);
  return found ? join(b.simState, found.backing) : undefined;
}

/** Everything a request may change, in a form that compares equal when nothing changed. */
export interface SiteState {
  volumes: XmlRecord[];
  snapshots: XmlRecord[];
  lvs: { name: string; bytes: number; origin?: string }[];
  targets: TargetView[];
  nodes: string[];
  sessions: string[];
  disks: string[];
  exports: Record<string, string[]>;
}

const byId = (key: string) => (a: XmlRecord, b: XmlRecord) => String(a[key]).localeCompare(String(b[key]));

export async function siteState(site: Site): Promise<SiteState> {
  const b = backendOf(site.dir);
  const volumes = (((await site.api.call('DescribeVolumes', {})).volume as XmlRecord[] | undefined) ?? []).sort(byId('volumeId'));
  const snapshots = (((await site.api.call('DescribeSnapshots', {})).snapshot as XmlRecord[] | undefined) ?? []).sort(byId('snapshotId'));
  const dump = simDump(b.simState);
  const lvs = dump.vgs
    .flatMap((vg) => vg.lvs.map((l) => ({ name: l.name, bytes: l.extents * vg.extentSize, ...(l.origin ? { origin: l.origin } : {}) })))
    .sort((x, y) => x.name.localeCompare(y.name));
  return {
    volumes,
    snapshots,
    lvs,
    targets: targetsOf(b, dump),
    // Session ids are counters: a rolled-back login and a new one differ only there.
    nodes: dump.iscsi.nodes.map((n) => `${n.portal} ${n.iqn}`).sort(),
    sessions: dump.iscsi.sessions.map((s) => `${s.portal} ${s.iqn}`).sort(),
    disks: dump.vms.flatMap((vm) => vm.disks.map((d) => `${vm.name}/${d.dev} ${d.mode} ${d.kind} ${d.target}`)).sort(),
    exports: exportRegistry(b),
  };
}

/** The delegate's record of which hosts use each export (empty entries dropped). */
function exportRegistry(b: BackendConfig): Record<string, string[]> {
  const file = join(b.stateDir, 'exports.json');
  if (!existsSync(file)) return {};
  const raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, string[]>;
  return Object.fromEntries(Object.entries(raw).filter(([, hosts]) => hosts.length > 0));
}

// ---------------------------------------------------------------- faults

/** Arms a simulator fault (`fail/<tool>.<verb>` or `hang/...`, see src/sim/README.md). */
export function armFault(site: Site, kind: 'fail' | 'hang', key: string, text = ''): void {
  const dir = join(backendOf(site.dir).simState, kind);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, key), text);
}

export function clearFault(site: Site, kind: 'fail' | 'hang', key: string): void {
  const dir = join(backendOf(site.dir).simState, kind);
  for (const f of [key, `${key}.count`, `${key}.exit`]) rmSync(join(dir, f), { force: true });
}

/** The shipped commands.properties with some patterns replaced: an operator's own file. */
export function operatorCommands(file: string, replace: Record<string, string>): string {
  let text = readFileSync(join(ROOT, 'commands.properties'), 'utf8');
  for (const [key, pattern] of Object.entries(replace)) {
    const re = new RegExp(`^${key.replace(/\./g, '\\.')} = .*$`, 'm');
    if (!re.test(text)) throw new Error(`commands.properties has no ${key}`);
    text = text.replace(re, `${key} = ${pattern}`);
  }
  writeFileSync(file, text);
  return file;
}

// ---------------------------------------------------------------- the CLI

/** Runs a CLI command that must succeed; returns its --json output. */
export async function ok<T = XmlRecord>(site: Site, ...args: string[]): Promise<T> {
  const r = await site.cli('--json', ...args);
  expect(r.code, `vbs ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout) as T;
}

/** Runs a CLI command that must fail with exit 1; returns its stderr. */
export async function fails(site: Site, ...args: string[]): Promise<string> {
  const r = await site.cli(...args);
  expect(r.code, `vbs ${args.join(' ')} should fail; stderr: ${r.stderr}`).toBe(1);
  return r.stderr;
}

/** `vbs admin check` finds no difference between the metadata and every delegate. */
export async function expectCheckClean(site: Site): Promise<void> {
  const r = await site.cli('admin', 'check');
  expect({ code: r.code, out: r.stdout + r.stderr }).toEqual({ code: 0, out: expect.stringContaining('No differences') });
}

/** Undo steps the front still has to retry (read-only look at its metadata). */
export function leftovers(dir: string): { kind: string; step: string; error: string }[] {
  const db = new Database(join(dir, 'vbs.db'), { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 10000');
    return db.prepare('SELECT kind, step, error FROM leftovers ORDER BY id').all() as { kind: string; step: string; error: string }[];
  } finally {
    db.close();
  }
}

/** The CHAP account the front recorded for a volume's attachment (tgt requires one per export), if any. */
export function chapAccountOf(dir: string, volumeId: string): { user: string; secret: string } | undefined {
  const db = new Database(join(dir, 'vbs.db'), { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 10000');
    const row = db.prepare('SELECT source FROM attachments WHERE volume_id = ? AND source IS NOT NULL').get(volumeId) as { source: string } | undefined;
    const s = row ? (JSON.parse(row.source) as { chapUser?: string; chapSecret?: string }) : {};
    return s.chapUser && s.chapSecret ? { user: s.chapUser, secret: s.chapSecret } : undefined;
  } finally {
    db.close();
  }
}

/** The targets and LUNs a portal reports over iSCSI itself (libiscsi's iscsi-ls), as any initiator sees them (logging in with `chap` where the target asks). */
export function iscsiLs(portal: string, initiator?: string, chap?: { user: string; secret: string }): string {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.LIBISCSI_CHAP_USERNAME;
  delete env.LIBISCSI_CHAP_PASSWORD;
  if (chap) Object.assign(env, { LIBISCSI_CHAP_USERNAME: chap.user, LIBISCSI_CHAP_PASSWORD: chap.secret });
  const r = spawnSync('iscsi-ls', ['-s', ...(initiator ? ['-i', initiator] : []), `iscsi://${portal}`], { encoding: 'utf8', env });
  if (r.status !== 0) throw new Error(`iscsi-ls ${portal} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}
