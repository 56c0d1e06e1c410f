/**
 * The simulated iscsiadm's window on REAL targets (tgtd, any iSCSI target on
 * a reachable portal), through libiscsi's userspace tools, because open-iscsi
 * cannot log in on machines without the iscsi_tcp kernel module:
 *
 *   iscsi-ls -s iscsi://<ip:port>                  SendTargets discovery, with each target's LUNs
 *   iscsi-inq iscsi://<ip:port>/<iqn>/<lun>        logs in and asks one LUN for its INQUIRY data
 *
 * Neither keeps a session open: a "logged-in" real target is one that answered
 * at login, and its LUNs have no host file behind them.
 *
 * A target that requires CHAP: libiscsi takes the account from the
 * environment (LIBISCSI_CHAP_USERNAME, LIBISCSI_CHAP_PASSWORD). The simulated
 * iscsiadm sets them from the target's node record, as open-iscsi's login
 * reads node.session.auth.* from it (node-records.ts); without an account
 * there, the variables the pattern set (if any) pass through.
 *
 * Both run as the host's initiator name (`-i`), from `<state>/initiatorname.iscsi`
 * (`InitiatorName=iqn...`), as open-iscsi reads /etc/iscsi/initiatorname.iscsi:
 * a target with an ACL lists and admits only the names on it.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The simulated host's initiator name, or undefined (libiscsi's own default) when the state has none. */
export function simInitiatorName(stateDir: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(join(stateDir, 'initiatorname.iscsi'), 'utf8');
  } catch {
    return undefined;
  }
  return /^InitiatorName=(iqn\.[0-9]{4}-[0-9]{2}\.[a-z0-9.-]+(?::[A-Za-z0-9.:_-]+)?)\s*$/m.exec(text)?.[1];
}

/** Gives the simulated host an initiator name (what an operator writes in /etc/iscsi/initiatorname.iscsi). */
export function writeSimInitiatorName(stateDir: string, initiator: string): void {
  writeFileSync(join(stateDir, 'initiatorname.iscsi'), `InitiatorName=${initiator}\n`, { mode: 0o644 });
}

const as = (initiator: string | undefined): string[] => (initiator ? ['-i', initiator] : []);

export interface RealTarget {
  iqn: string;
  tpgt: number;
  /** Disk (DIRECT_ACCESS) LUNs. */
  luns: number[];
}

export type LoginResult = { ok: true; luns: number[] } | { ok: false; why: 'unreachable' | 'refused' | 'unauthorized' };

/** A stuck portal must not hold the simulated command for ever. */
const TOOL_TIMEOUT_MS = 15_000;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A CHAP account to log in with (from the node record), given to libiscsi in its environment, never argv. */
export interface ChapAccount {
  readonly user: string;
  readonly secret: string;
}

function run(tool: string, args: string[], chap?: ChapAccount): Run {
  // Without an account from the record, libiscsi reads whatever LIBISCSI_CHAP_* the pattern set (older deployments' way).
  const env = chap ? { ...process.env, LIBISCSI_CHAP_USERNAME: chap.user, LIBISCSI_CHAP_PASSWORD: chap.secret } : process.env;
  const r = spawnSync(tool, args, { encoding: 'utf8', timeout: TOOL_TIMEOUT_MS, stdio: ['ignore', 'pipe', 'pipe'], env });
  // A missing tool or a timeout is a portal we could not reach.
  if (r.error) return { code: null, stdout: '', stderr: String(r.error.message) };
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/**
 * Parses `iscsi-ls -s` output:
 *   Target:iqn.2010-10.org.example:vol-1 Portal:127.0.0.1:13260,1
 *   Lun:0    Type:STORAGE_ARRAY_CONTROLLER
 *   Lun:1    Type:DIRECT_ACCESS (Size:3M)
 */
export function parseIscsiLs(text: string): RealTarget[] {
  const targets: RealTarget[] = [];
  let current: RealTarget | undefined;
  for (const line of text.split('\n')) {
    const t = /^Target:(\S+)\s+Portal:\S*?,(\d+)\s*$/.exec(line) ?? /^Target:(\S+)/.exec(line);
    if (t?.[1]) {
      current = { iqn: t[1], tpgt: t[2] ? Number(t[2]) : 1, luns: [] };
      targets.push(current);
      continue;
    }
    const l = /^Lun:(\d+)\s+Type:(\S+)/.exec(line);
    if (l?.[1] && current && l[2] === 'DIRECT_ACCESS') current.luns.push(Number(l[1]));
  }
  return targets;
}

/**
 * The targets a real SendTargets discovery at `portal` returns, or undefined
 * when nothing answers there. `-s` lists each target's LUNs by logging in to
 * it, which a target requiring other CHAP credentials refuses (and iscsi-ls
 * then fails as a whole); SendTargets itself needs none, as with iscsiadm. So
 * without `-s` those targets are listed with no LUNs, and login finds them.
 */
export function realDiscovery(portal: string, initiator?: string): RealTarget[] | undefined {
  const r = run('iscsi-ls', ['-s', ...as(initiator), `iscsi://${portal}`]);
  if (r.code === 0) return parseIscsiLs(r.stdout);
  const plain = run('iscsi-ls', [...as(initiator), `iscsi://${portal}`]);
  if (plain.code !== 0) return undefined;
  return parseIscsiLs(plain.stdout);
}

/** How a failed iscsi-inq ended: the LUN is not there, or the login failed (and why). */
function failure(r: Run): 'no-lun' | 'unauthorized' | 'refused' | 'unreachable' {
  // The target answered the login and the LUN is not there.
  if (r.code !== null && /SENSE KEY|LOGICAL_UNIT_NOT_SUPPORTED/.test(r.stderr)) return 'no-lun';
  // The target refused the CHAP credentials (libiscsi reads them from
  // LIBISCSI_CHAP_USERNAME / LIBISCSI_CHAP_PASSWORD, which the login pattern sets).
  if (r.code !== null && /Status: Authentication failure/.test(r.stderr)) return 'unauthorized';
  // The target answered the login with a status ("Failed to log in to target.
  // Status: Target not found(515)", authorization failures): it will not change.
  if (r.code !== null && /Failed to log in to target\. Status:/.test(r.stderr)) return 'refused';
  // Anything else (refused, reset, timed out, no tool) is a connection failure.
  return 'unreachable';
}

const inquire = (portal: string, iqn: string, lun: number, initiator?: string, chap?: ChapAccount): Run =>
  run('iscsi-inq', [...as(initiator), `iscsi://${portal}/${iqn}/${lun}`], chap);

/** Data LUNs probed, from 1, when discovery could not list them (VBS exports LUN 1). */
const MAX_PROBED_LUN = 8;

/**
 * Logs in to a real target by asking each LUN found at discovery for its
 * INQUIRY data. A LUN that is no longer there is left out, as a real login
 * simply makes no device for it. When discovery listed none, LUN 0 answers
 * for the login and the disk LUNs are probed from 1 up to the first missing.
 */
export function realLogin(portal: string, iqn: string, luns: readonly number[], initiator?: string, chap?: ChapAccount): LoginResult {
  if (!luns.length) return probeLogin(portal, iqn, initiator, chap);
  const answered: number[] = [];
  for (const lun of luns) {
    const r = inquire(portal, iqn, lun, initiator, chap);
    if (r.code === 0) {
      answered.push(lun);
      continue;
    }
    const why = failure(r);
    if (why === 'no-lun') continue;
    return { ok: false, why };
  }
  return { ok: true, luns: answered };
}

function probeLogin(portal: string, iqn: string, initiator?: string, chap?: ChapAccount): LoginResult {
  const first = inquire(portal, iqn, 0, initiator, chap);
  if (first.code !== 0) {
    const why = failure(first);
    if (why !== 'no-lun') return { ok: false, why };
  }
  const found: number[] = [];
  for (let lun = 1; lun <= MAX_PROBED_LUN; lun++) {
    const r = inquire(portal, iqn, lun, initiator, chap);
    if (r.code !== 0) break;
    if (/Peripheral Device Type:DIRECT_ACCESS/.test(r.stdout)) found.push(lun);
  }
  return { ok: true, luns: found };
}
