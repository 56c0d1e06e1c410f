/**
 * open-iscsi's `iscsiadm` (initiator side):
 *
 *   iscsiadm -m discovery -t sendtargets|st -p <ip[:port]>
 *   iscsiadm -m node [-T <iqn>] [-p <ip[:port]>] --login|-l
 *   iscsiadm -m node [-T <iqn>] [-p <ip[:port]>] --logout|-u
 *   iscsiadm -m node [-T <iqn>] [-p <ip[:port]>] --rescan|-R   (re-read grown LUNs; 21 without a session)
 *   iscsiadm -m node [-T <iqn>] [-p <ip[:port]>] [-o new|delete|show]
 *   iscsiadm -m node -T <iqn> -p <ip[:port]> -o update -n <setting> -v <value>
 *
 * Node records are files in open-iscsi's layout and format under
 * `<state>/iscsi/nodes` (node-records.ts): a login to a real target sends the
 * CHAP account of its record (node.session.auth.*), as iscsiadm does, and a
 * target that requires another refuses it (exit 24).
 *   iscsiadm -m session [-r <sid>] [-u]
 *
 * Exit codes are open-iscsi's (iscsi_err.h): 4 connection failure, 7 invalid
 * parameter, 15 session exists, 19 non-retryable login failure, 21 no objects found.
 * Logging in makes the LUNs of the target appear as
 * /dev/disk/by-path/ip-<ip:port>-iscsi-<iqn>-lun-<n> (known to the other simulated tools).
 *
 * A portal where no simulated target answers is tried for real with libiscsi
 * (libiscsi.ts): discovery runs `iscsi-ls -s`, login checks each LUN with
 * `iscsi-inq`; the output, messages and exit codes stay iscsiadm's. The
 * by-path devices of such a session have no host file behind them.
 *
 * Management verbs (not real tools):
 *   hostsim iscsi device <iqn> <lun>            the by-path device of a logged-in LUN
 *   hostsim iscsi target add <ip:port> <iqn> [<lun>=<path>...]   a target not served by the IET
 *   hostsim iscsi target remove <ip:port> <iqn>
 */
import { byPathName, ietServes, normalizePortal, splitPortal, targetLuns } from './devices.js';
import type { Io } from './io.js';
import { realDiscovery, realLogin, simInitiatorName, type LoginResult } from './libiscsi.js';
import { readState, transact, type NodeRecord, type Session, type SimState } from './state.js';
import { recordAccount, removeRecord, shownRecord, updateRecords, writeNewRecord } from './node-records.js';

const ISCSI_ERR_TRANS = 4;
const ISCSI_ERR_INVAL = 7;
const ISCSI_ERR_SESS_EXISTS = 15;
const ISCSI_ERR_FATAL_LOGIN = 19;
// open-iscsi's code when the target refused the CHAP credentials.
const ISCSI_ERR_LOGIN_AUTH_FAILED = 24;
const ISCSI_ERR_NO_OBJS_FOUND = 21;

interface Args {
  mode?: string;
  type?: string;
  portal?: string;
  target?: string;
  login: boolean;
  logout: boolean;
  rescan: boolean;
  op?: string;
  sid?: string;
  print?: string;
  /** -n / -v of `-o update`: a record setting and its value. */
  name?: string;
  value?: string;
}

const WITH_VALUE: Record<string, keyof Args | 'ignore'> = {
  m: 'mode',
  mode: 'mode',
  t: 'type',
  type: 'type',
  p: 'portal',
  portal: 'portal',
  T: 'target',
  targetname: 'target',
  o: 'op',
  op: 'op',
  r: 'sid',
  sid: 'sid',
  P: 'print',
  print: 'print',
  I: 'ignore',
  interface: 'ignore',
  n: 'name',
  name: 'name',
  v: 'value',
  value: 'value',
  d: 'ignore',
  debug: 'ignore',
  L: 'ignore',
  loginall: 'ignore',
  U: 'ignore',
  logoutall: 'ignore',
};

function parse(io: Io, args: string[]): Args | number {
  const r: Args = { login: false, logout: false, rescan: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    let name: string;
    let value: string | undefined;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      if (eq >= 0) value = a.slice(eq + 1);
    } else if (a.startsWith('-') && a.length > 1) {
      name = a[1] as string;
      if (a.length > 2) value = a.slice(2);
    } else {
      io.eprint(`iscsiadm: unrecognized character '${a}'`);
      return ISCSI_ERR_INVAL;
    }
    if (name === 'l' || name === 'login') {
      r.login = true;
      continue;
    }
    if (name === 'u' || name === 'logout') {
      r.logout = true;
      continue;
    }
    if (name === 'R' || name === 'rescan') {
      r.rescan = true;
      continue;
    }
    if (name === 's' || name === 'stats') continue;
    const key = WITH_VALUE[name];
    if (!key) {
      io.eprint(`iscsiadm: unrecognized option '${a}'`);
      return ISCSI_ERR_INVAL;
    }
    if (value === undefined) value = args[++i];
    if (value === undefined) {
      io.eprint(`iscsiadm: option '${a}' requires an argument`);
      return ISCSI_ERR_INVAL;
    }
    if (key !== 'ignore') (r as unknown as Record<string, string>)[key] = value;
  }
  return r;
}

/** "127.0.0.1:3260" → "127.0.0.1,3260" as iscsiadm shows portals in messages. */
function shownPortal(portal: string): string {
  const [ip, port] = splitPortal(portal);
  return `${ip},${port}`;
}

function recName(r: { iqn: string; portal: string }): string {
  return `[iface: default, target: ${r.iqn}, portal: ${shownPortal(r.portal)}]`;
}

/** Targets a sendtargets discovery at this portal would return, or undefined if nothing listens. */
function discover(st: SimState, portal: string): string[] | undefined {
  const serves = ietServes(st, portal);
  const foreign = st.iscsi.foreign.filter((f) => f.portal === portal).map((f) => f.iqn);
  if (!serves && foreign.length === 0) return undefined;
  const iet = serves ? st.iet.targets.map((t) => t.name) : [];
  return [...iet, ...foreign.filter((f) => !iet.includes(f))];
}

function connectionRefused(io: Io, portal: string): void {
  const [ip] = splitPortal(portal);
  for (let i = 0; i < 6; i++) io.eprint(`iscsiadm: cannot make connection to ${ip}: Connection refused`);
  io.eprint('iscsiadm: connection login retries (reopen_max) 5 exceeded');
}

function discovery(io: Io, dir: string, a: Args): number {
  if (a.type === undefined) {
    io.eprint('iscsiadm: discovery mode: option \'-t\' is required');
    return ISCSI_ERR_INVAL;
  }
  if (a.type !== 'sendtargets' && a.type !== 'st') {
    io.eprint(`iscsiadm: Unsupported discovery type.`);
    return ISCSI_ERR_INVAL;
  }
  if (!a.portal) {
    io.eprint('iscsiadm: Please specify portal as <ipaddr>[:<ipport>]');
    return ISCSI_ERR_INVAL;
  }
  const portal = normalizePortal(a.portal);
  // Where no simulated target answers, ask the portal for real (before taking
  // the state lock: it is network I/O).
  const real = discover(readState(dir), portal)?.length ? undefined : realDiscovery(portal, simInitiatorName(dir));
  return transact(dir, (st) => {
    const simulated = discover(st, portal);
    let found: NodeRecord[] | undefined;
    if (simulated?.length) found = simulated.map((iqn) => ({ iqn, portal, tpgt: 1 }));
    else if (real) found = real.map((t) => ({ iqn: t.iqn, portal, tpgt: t.tpgt, luns: t.luns }));
    else if (simulated) found = [];
    if (found === undefined) {
      connectionRefused(io, portal);
      io.eprint('iscsiadm: Could not perform SendTargets discovery: encountered connection failure');
      return ISCSI_ERR_TRANS;
    }
    // sendtargets replaces this portal's records with what the target reports
    // (their settings too: a record is written afresh, as iscsiadm rewrites it).
    for (const old of st.iscsi.nodes.filter((n) => n.portal === portal)) removeRecord(dir, old);
    st.iscsi.nodes = st.iscsi.nodes.filter((n) => n.portal !== portal);
    st.iscsi.nodes.push(...found);
    for (const r of found) writeNewRecord(dir, r);
    if (found.length === 0) {
      io.eprint('iscsiadm: No portals found');
      return ISCSI_ERR_NO_OBJS_FOUND;
    }
    for (const r of found) io.print(`${portal},${r.tpgt} ${r.iqn}`);
    return 0;
  }, true);
}

function matches(r: { iqn: string; portal: string }, a: Args): boolean {
  return (a.target === undefined || r.iqn === a.target) && (a.portal === undefined || r.portal === normalizePortal(a.portal));
}

const recKey = (r: { iqn: string; portal: string }): string => `${r.portal} ${r.iqn}`;

/** Real targets answer before the state lock is taken (network I/O); the transaction uses the answers. */
function realLogins(dir: string, a: Args): Map<string, LoginResult> {
  const st = readState(dir);
  const answers = new Map<string, LoginResult>();
  for (const r of st.iscsi.nodes.filter((n) => n.luns && matches(n, a))) {
    if (st.iscsi.sessions.some((s) => s.iqn === r.iqn && s.portal === r.portal)) continue;
    answers.set(recKey(r), realLogin(r.portal, r.iqn, r.luns ?? [], simInitiatorName(dir), recordAccount(dir, r)));
  }
  return answers;
}

function loginFailed(io: Io, r: NodeRecord, code: number, text: string): void {
  io.eprint(`iscsiadm: Could not login to ${recName(r)}.`);
  io.eprint(`iscsiadm: initiator reported error (${code} - ${text})`);
}

function login(io: Io, dir: string, a: Args): number {
  const real = realLogins(dir, a);
  return transact(
    dir,
    (st) => {
      const recs = st.iscsi.nodes.filter((n) => matches(n, a));
      if (recs.length === 0) {
        io.eprint('iscsiadm: No records found');
        return ISCSI_ERR_NO_OBJS_FOUND;
      }
      let rc = 0;
      let failed = false;
      const started: NodeRecord[] = [];
      for (const r of recs) {
        if (st.iscsi.sessions.some((s) => s.iqn === r.iqn && s.portal === r.portal)) {
          io.eprint('iscsiadm: default: 1 session requested, but 1 already present.');
          rc = rc || ISCSI_ERR_SESS_EXISTS;
          failed = true;
          continue;
        }
        io.print(`Logging in to ${recName(r)}`);
        started.push(r);
      }
      for (const r of started) {
        let luns: number[] | undefined;
        if (r.luns) {
          const answer = real.get(recKey(r)) ?? realLogin(r.portal, r.iqn, r.luns, simInitiatorName(dir), recordAccount(dir, r));
          if (!answer.ok) {
            const [code, text] =
              answer.why === 'unauthorized'
                ? [ISCSI_ERR_LOGIN_AUTH_FAILED, 'iSCSI login failed due to authorization failure']
                : answer.why === 'refused'
                  ? [ISCSI_ERR_FATAL_LOGIN, 'encountered non-retryable iSCSI login failure']
                  : [ISCSI_ERR_TRANS, 'encountered connection failure'];
            loginFailed(io, r, code, text);
            rc = rc || code;
            failed = true;
            continue;
          }
          luns = answer.luns;
        } else {
          const reachable = discover(st, r.portal);
          if (reachable === undefined) {
            loginFailed(io, r, ISCSI_ERR_TRANS, 'encountered connection failure');
            rc = rc || ISCSI_ERR_TRANS;
            failed = true;
            continue;
          }
          if (!reachable.includes(r.iqn) || targetLuns(st, r.portal, r.iqn) === undefined) {
            loginFailed(io, r, ISCSI_ERR_FATAL_LOGIN, 'encountered non-retryable iSCSI login failure');
            rc = rc || ISCSI_ERR_FATAL_LOGIN;
            failed = true;
            continue;
          }
        }
        const sid = st.iscsi.nextSid++;
        st.iscsi.sessions.push({ sid, iqn: r.iqn, portal: r.portal, tpgt: r.tpgt, ...(luns ? { luns } : {}) });
        io.print(`Login to ${recName(r)} successful.`);
      }
      if (failed) io.eprint('iscsiadm: Could not log into all portals');
      return rc;
    },
    true,
  );
}

function logoutSessions(io: Io, dir: string, pick: (s: Session) => boolean): number {
  return transact(dir, (st) => {
    const sessions = st.iscsi.sessions.filter(pick);
    if (sessions.length === 0) {
      io.eprint('iscsiadm: No matching sessions found');
      return ISCSI_ERR_NO_OBJS_FOUND;
    }
    for (const s of sessions) io.print(`Logging out of session [sid: ${s.sid}, target: ${s.iqn}, portal: ${shownPortal(s.portal)}]`);
    for (const s of sessions) {
      st.iscsi.sessions.splice(st.iscsi.sessions.indexOf(s), 1);
      io.print(`Logout of [sid: ${s.sid}, target: ${s.iqn}, portal: ${shownPortal(s.portal)}] successful.`);
    }
    return 0;
  });
}

/**
 * `-m node -T <iqn> -p <portal> --rescan`: the host re-reads the LUNs' sizes
 * of the matching sessions (a grown LUN's block device grows). Nothing to
 * keep in the simulator's state: its devices have no size of their own.
 */
function rescanSessions(io: Io, dir: string, pick: (s: Session) => boolean): number {
  const sessions = readState(dir).iscsi.sessions.filter(pick);
  if (sessions.length === 0) {
    io.eprint('iscsiadm: No session found.');
    return ISCSI_ERR_NO_OBJS_FOUND;
  }
  for (const s of sessions) io.print(`Rescanning session [sid: ${s.sid}, target: ${s.iqn}, portal: ${shownPortal(s.portal)}]`);
  return 0;
}

function nodeMode(io: Io, dir: string, a: Args): number {
  if (a.login && a.logout) {
    io.eprint('iscsiadm: Invalid parameters. Login/logout and op passed in');
    return ISCSI_ERR_INVAL;
  }
  if (a.login) return login(io, dir, a);
  if (a.logout) return logoutSessions(io, dir, (s) => matches(s, a));
  if (a.rescan) return rescanSessions(io, dir, (s) => matches(s, a));
  switch (a.op) {
    case 'new': {
      if (!a.target || !a.portal) {
        io.eprint('iscsiadm: --op new requires a target and portal');
        return ISCSI_ERR_INVAL;
      }
      const portal = normalizePortal(a.portal);
      const [ip, port] = splitPortal(portal);
      return transact(dir, (st) => {
        if (!st.iscsi.nodes.some((n) => n.iqn === a.target && n.portal === portal)) {
          const r = { iqn: a.target as string, portal, tpgt: -1 };
          st.iscsi.nodes.push(r);
          writeNewRecord(dir, r);
        }
        io.print(`New iSCSI node [tcp:[hw=,ip=,net_if=,iscsi_if=default] ${ip},${port},-1 ${a.target}] added`);
        return 0;
      });
    }
    case 'delete':
      return transact(dir, (st) => {
        const keep = st.iscsi.nodes.filter((n) => !matches(n, a));
        if (keep.length === st.iscsi.nodes.length) {
          io.eprint('iscsiadm: No records found');
          return ISCSI_ERR_NO_OBJS_FOUND;
        }
        for (const gone of st.iscsi.nodes.filter((n) => !keep.includes(n))) removeRecord(dir, gone);
        st.iscsi.nodes = keep;
        return 0;
      });
    case 'update':
    case 'show':
    case undefined: {
      const recs = readState(dir).iscsi.nodes.filter((n) => matches(n, a));
      if (recs.length === 0) {
        io.eprint('iscsiadm: No records found');
        return ISCSI_ERR_NO_OBJS_FOUND;
      }
      if (a.op === 'update') {
        if (a.name === undefined || a.value === undefined) {
          io.eprint('iscsiadm: update requires name and value');
          return ISCSI_ERR_INVAL;
        }
        for (const r of recs) updateRecords(dir, r, a.name, a.value);
        return 0;
      }
      for (const r of recs) {
        if (a.op === 'show') {
          const [ip, port] = splitPortal(r.portal);
          io.print(shownRecord(dir, r) ?? `# BEGIN RECORD 2.1.8\nnode.name = ${r.iqn}\nnode.tpgt = ${r.tpgt}\nnode.startup = manual\nnode.conn[0].address = ${ip}\nnode.conn[0].port = ${port}\n# END RECORD`);
        } else io.print(`${r.portal},${r.tpgt} ${r.iqn}`);
      }
      return 0;
    }
    default:
      io.eprint(`iscsiadm: can not recognize operation: '${a.op}'`);
      return ISCSI_ERR_INVAL;
  }
}

function sessionMode(io: Io, dir: string, a: Args): number {
  const bySid = a.sid === undefined ? () => true : (s: Session) => String(s.sid) === a.sid;
  if (a.logout) return logoutSessions(io, dir, bySid);
  const sessions = readState(dir).iscsi.sessions.filter(bySid);
  if (sessions.length === 0) {
    if (a.sid !== undefined) {
      io.eprint(`iscsiadm: Could not get session info for sid ${a.sid}`);
      return 2;
    }
    io.eprint('iscsiadm: No active sessions.');
    return ISCSI_ERR_NO_OBJS_FOUND;
  }
  for (const s of sessions) io.print(`tcp: [${s.sid}] ${s.portal},${s.tpgt} ${s.iqn} (non-flash)`);
  return 0;
}

export function iscsiadmMain(io: Io, dir: string, args: string[]): number {
  const a = parse(io, args);
  if (typeof a === 'number') return a;
  switch (a.mode) {
    case 'discovery':
    case 'discoverydb':
      return discovery(io, dir, a);
    case 'node':
      return nodeMode(io, dir, a);
    case 'session':
      return sessionMode(io, dir, a);
    case undefined:
      io.eprint('iscsiadm: You must specify a mode');
      return ISCSI_ERR_INVAL;
    default:
      io.eprint(`iscsiadm: Invalid mode '${a.mode}'`);
      return ISCSI_ERR_INVAL;
  }
}

export function iscsiManage(io: Io, dir: string, args: string[]): number {
  const [verb, ...rest] = args;
  if (verb === 'device') {
    const [iqn, lunText] = rest;
    if (!iqn || lunText === undefined || !/^\d+$/.test(lunText) || rest.length !== 2) {
      io.eprint('usage: hostsim iscsi device <iqn> <lun>');
      return 2;
    }
    const st = readState(dir);
    const lun = Number(lunText);
    const s = st.iscsi.sessions.find((x) => x.iqn === iqn && (x.luns ? x.luns.includes(lun) : targetLuns(st, x.portal, iqn)?.some((l) => l.lun === lun)));
    if (!s) {
      io.eprint(`hostsim: no device for ${iqn} lun ${lun} (not logged in, or no such LUN)`);
      return 1;
    }
    io.print(byPathName(s.portal, iqn, lun));
    return 0;
  }
  if (verb === 'target' && (rest[0] === 'add' || rest[0] === 'remove')) {
    const [op, portalArg, iqn, ...lunArgs] = rest;
    if (!portalArg || !iqn || (op === 'remove' && lunArgs.length)) {
      io.eprint('usage: hostsim iscsi target add <ip:port> <iqn> [<lun>=<path>...] | target remove <ip:port> <iqn>');
      return 2;
    }
    const portal = normalizePortal(portalArg);
    const luns: { lun: number; path: string }[] = [];
    for (const l of lunArgs) {
      const m = /^(\d+)=(\/.*)$/.exec(l);
      if (!m?.[1] || !m[2]) {
        io.eprint(`hostsim: bad LUN '${l}' (want <lun>=<absolute path>)`);
        return 2;
      }
      luns.push({ lun: Number(m[1]), path: m[2] });
    }
    return transact(dir, (st) => {
      st.iscsi.foreign = st.iscsi.foreign.filter((f) => !(f.portal === portal && f.iqn === iqn));
      if (op === 'add') st.iscsi.foreign.push({ portal, iqn, luns });
      return 0;
    });
  }
  io.eprint('usage: hostsim iscsi device <iqn> <lun> | iscsi target add|remove ...');
  return 2;
}

/** Fault-injection verbs: discovery, login, logout, node, session. */
export function iscsiadmVerb(args: string[]): string {
  let mode = '';
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '-m' || a === '--mode') mode = args[i + 1] ?? '';
    else if (a.startsWith('--mode=')) mode = a.slice(7);
    else if (a.startsWith('-m') && a.length > 2) mode = a.slice(2);
  }
  if (mode === 'discoverydb') mode = 'discovery';
  if (mode === 'node' || mode === 'session') {
    if (args.some((a) => a === '-l' || a === '--login')) return 'login';
    if (args.some((a) => a === '-u' || a === '--logout')) return 'logout';
    if (args.some((a) => a === '-R' || a === '--rescan')) return 'rescan';
  }
  return mode;
}
