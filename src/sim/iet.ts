/**
 * iSCSI Enterprise Target's `ietadm`:
 *
 *   ietadm --op new --tid=<tid> --params Name=<iqn>
 *   ietadm --op new --tid=<tid> --lun=<lun> --params Path=<path>[,Type=fileio|blockio][,IOMode=wt|wb|ro]
 *   ietadm --op delete --tid=<tid> [--lun=<lun>]
 *   ietadm --op show --tid=<tid>
 *   ietadm --op update --tid=<tid> --params=key=value,...
 *
 * Like ietadm 1.4.x: a refusal from the daemon prints strerror followed by a period
 * ("File exists.") and the exit status is the negative errno truncated to a byte
 * (-EEXIST → 239, -ENOENT → 254, -EINVAL → 234, -EBUSY → 240). Bad command lines print
 * "Try `ietadm --help' for more information." and exit 255.
 *
 * Management verbs (not real tools):
 *   hostsim iet list               /proc/net/iet/volume
 *   hostsim iet sessions           /proc/net/iet/session
 *   hostsim iet portal [<ip:port>...|--any]   addresses the target answers on (default: any)
 */
import { statSync } from 'node:fs';
import { normalizePortal, resolveDevice, splitPortal } from './devices.js';
import type { Io } from './io.js';
import { readState, transact, type SimState, type Target } from './state.js';

const ERRNO = { ENOENT: 2, EEXIST: 17, EINVAL: 22, EBUSY: 16 } as const;
const STRERROR: Record<number, string> = {
  2: 'No such file or directory',
  17: 'File exists',
  22: 'Invalid argument',
  16: 'Device or resource busy',
};

export const SIM_INITIATOR = 'iqn.1993-08.org.debian:01:hostsim';

/** A refusal from ietd: strerror on stderr, exit status (-errno) & 0xff. */
function daemonError(io: Io, errno: number): number {
  io.eprint(`${STRERROR[errno] ?? 'Unknown error'}.`);
  return (256 - errno) & 0xff;
}

function usage(io: Io): number {
  io.eprint("Try `ietadm --help' for more information.");
  return 255;
}

const HELP = `Usage: ietadm [OPTION]

iSCSI Enterprise Target Administration Utility.

  --op new --tid=[id] --params Name=[name]
                        add a new target with [id]. [id] must not be zero.
  --op delete --tid=[id]
                        delete specific target with [id]. The target must
                        have no active sessions.
  --op new --tid=[id] --lun=[lun] --params Path=[path]
                        add a new logical unit with [lun] to specific
                        target with [id]. The logical unit is offered
                        to the initiators. [path] must be block device files
                        (including LVM and RAID devices) or regular files.
  --op delete --tid=[id] --lun=[lun]
                        delete specific logical unit with [lun] that
                        the target with [id] has.
  --op show --tid=[id]
                        show target parameters of target with [id].
  --version             display version and exit
  --help                display this help and exit
`;

interface IetArgs {
  op?: string;
  tid?: number;
  lun?: number;
  sid?: string;
  cid?: string;
  params?: string;
  user: boolean;
}

const LONG: Record<string, keyof IetArgs | 'help' | 'version'> = {
  op: 'op',
  tid: 'tid',
  lun: 'lun',
  sid: 'sid',
  cid: 'cid',
  params: 'params',
  user: 'user',
  help: 'help',
  version: 'version',
};
const SHORT: Record<string, keyof IetArgs | 'help' | 'version'> = {
  o: 'op',
  t: 'tid',
  l: 'lun',
  s: 'sid',
  c: 'cid',
  p: 'params',
  u: 'user',
  h: 'help',
  v: 'version',
};

/** strtoul(…, 10) as ietadm uses it: leading digits, anything else is 0. */
function strtoul(s: string): number {
  const m = /^\s*\+?(\d+)/.exec(s);
  return m?.[1] ? Number(m[1]) : 0;
}

function parse(io: Io, args: string[]): IetArgs | number {
  const r: IetArgs = { user: false };
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    let key: keyof IetArgs | 'help' | 'version' | undefined;
    let value: string | undefined;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      key = LONG[name];
      if (!key) {
        io.eprint(`ietadm: unrecognized option '${a}'`);
        return usage(io);
      }
      if (eq >= 0) value = a.slice(eq + 1);
    } else if (a.startsWith('-') && a.length > 1) {
      key = SHORT[a[1] as string];
      if (!key) {
        io.eprint(`ietadm: invalid option -- '${a[1]}'`);
        return usage(io);
      }
      if (a.length > 2) value = a.slice(2);
    } else {
      positional.push(a);
      continue;
    }
    if (key === 'help') {
      io.print(HELP);
      return 0;
    }
    if (key === 'version') {
      io.print('ietadm version 1.4.20.3');
      return 0;
    }
    if (key === 'user') {
      r.user = true;
      continue;
    }
    if (value === undefined) {
      value = args[++i];
      if (value === undefined) {
        io.eprint(`ietadm: option '${a}' requires an argument`);
        return usage(io);
      }
    }
    if (key === 'tid') r.tid = strtoul(value);
    else if (key === 'lun') r.lun = strtoul(value);
    else if (key === 'op') r.op = value;
    else if (key === 'params') r.params = value;
    else if (key === 'sid') r.sid = value;
    else if (key === 'cid') r.cid = value;
  }
  if (r.op === undefined || !['new', 'delete', 'update', 'show'].includes(r.op)) {
    io.eprint('You must specify the operation type');
    return (256 - ERRNO.EINVAL) & 0xff;
  }
  if (positional.length) {
    io.eprint(`unrecognized: ${positional.join('')}`);
    return usage(io);
  }
  return r;
}

function hasSessions(st: SimState, t: Target): boolean {
  return st.iscsi.sessions.some((s) => s.iqn === t.name);
}

function params(text: string | undefined): Map<string, string> {
  const m = new Map<string, string>();
  for (const part of (text ?? '').split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) m.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return m;
}

export function ietadmMain(io: Io, dir: string, args: string[]): number {
  const a = parse(io, args);
  if (typeof a === 'number') return a;
  const EINVAL = (256 - ERRNO.EINVAL) & 0xff;

  if (a.user) {
    // Accounts are accepted and not modelled (the simulator does no CHAP).
    if (a.op !== 'new' && a.op !== 'delete') {
      io.eprint('Unsupported.');
      return EINVAL;
    }
    return 0;
  }

  if (a.lun !== undefined) {
    if (a.op === 'update') {
      io.eprint('Unsupported.');
      return EINVAL;
    }
    if (a.tid === undefined) return EINVAL;
    const tid = a.tid;
    const lunNo = a.lun;
    if (a.op === 'show') return readState(dir).iet.targets.some((t) => t.tid === tid) ? 0 : daemonError(io, ERRNO.ENOENT);
    return transact(dir, (st) => {
      const t = st.iet.targets.find((x) => x.tid === tid);
      if (!t) return daemonError(io, ERRNO.ENOENT);
      if (a.op === 'delete') {
        const i = t.luns.findIndex((l) => l.lun === lunNo);
        if (i < 0) return daemonError(io, ERRNO.ENOENT);
        t.luns.splice(i, 1);
        return 0;
      }
      const p = params(a.params);
      const path = p.get('Path');
      const type = (p.get('Type') ?? 'fileio').toLowerCase();
      const iomode = (p.get('IOMode') ?? 'wt').toLowerCase();
      if (!path || !['fileio', 'blockio', 'nullio'].includes(type) || !['wt', 'wb', 'ro'].includes(iomode)) return daemonError(io, ERRNO.EINVAL);
      if (t.luns.some((l) => l.lun === lunNo)) return daemonError(io, ERRNO.EEXIST);
      if (type !== 'nullio' && !resolveDevice(st, dir, path).exists) return daemonError(io, ERRNO.ENOENT);
      t.luns.push({ lun: lunNo, path, type, iomode });
      t.luns.sort((x, y) => x.lun - y.lun);
      return 0;
    });
  }

  if (a.sid !== undefined || a.cid !== undefined) {
    if (a.op === 'new' || a.op === 'update') {
      io.eprint('Unsupported.');
      return EINVAL;
    }
    return EINVAL;
  }

  if (a.tid !== undefined) {
    const tid = a.tid;
    if (a.op === 'show') {
      const t = readState(dir).iet.targets.find((x) => x.tid === tid);
      if (!t) return daemonError(io, ERRNO.ENOENT);
      for (const line of ['Wthreads=8', 'Type=0', 'QueuedCommands=32', 'NOPInterval=0', 'NOPTimeout=0']) io.print(line);
      return 0;
    }
    if (a.op === 'update') return readState(dir).iet.targets.some((x) => x.tid === tid) ? 0 : daemonError(io, ERRNO.ENOENT);
    return transact(dir, (st) => {
      if (a.op === 'new') {
        const p = a.params ?? '';
        const eq = p.indexOf('=');
        if (eq < 0 || p.slice(0, eq) !== 'Name') return EINVAL;
        const name = p.slice(eq + 1);
        if (tid === 0 || !name) return daemonError(io, ERRNO.EINVAL);
        if (st.iet.targets.some((t) => t.tid === tid || t.name === name)) return daemonError(io, ERRNO.EEXIST);
        st.iet.targets.push({ tid, name, luns: [] });
        st.iet.targets.sort((x, y) => x.tid - y.tid);
        return 0;
      }
      const i = st.iet.targets.findIndex((t) => t.tid === tid);
      if (i < 0) return daemonError(io, ERRNO.ENOENT);
      if (hasSessions(st, st.iet.targets[i] as Target)) return daemonError(io, ERRNO.EBUSY);
      st.iet.targets.splice(i, 1);
      return 0;
    });
  }

  // No target given: "--op delete" stops all activity.
  if (a.op !== 'delete') return daemonError(io, ERRNO.EINVAL);
  return transact(dir, (st) => {
    st.iet.targets = [];
    return 0;
  });
}

function blocks(st: SimState, dir: string, path: string): number {
  try {
    return Math.floor(statSync(resolveDevice(st, dir, path).backing).size / 512);
  } catch {
    return 0;
  }
}

export function ietManage(io: Io, dir: string, args: string[]): number {
  const [verb, ...rest] = args;
  switch (verb) {
    case 'list': {
      const st = readState(dir);
      for (const t of st.iet.targets) {
        io.print(`tid:${t.tid} name:${t.name}`);
        for (const l of t.luns)
          io.print(`\tlun:${l.lun} state:0 iotype:${l.type} iomode:${l.iomode} blocks:${blocks(st, dir, l.path)} blocksize:512 path:${l.path}`);
      }
      return 0;
    }
    case 'sessions': {
      const st = readState(dir);
      for (const t of st.iet.targets) {
        io.print(`tid:${t.tid} name:${t.name}`);
        for (const s of st.iscsi.sessions.filter((x) => x.iqn === t.name)) {
          io.print(`\tsid:${281474997486080 + s.sid * 512} initiator:${SIM_INITIATOR}`);
          io.print(`\t\tcid:0 ip:${splitPortal(s.portal)[0]} state:active hd:none dd:none`);
        }
      }
      return 0;
    }
    case 'portal': {
      if (rest.length === 0) {
        const st = readState(dir);
        for (const p of st.iet.portals) io.print(p);
        return 0;
      }
      const list = rest[0] === '--any' && rest.length === 1 ? [] : rest.map(normalizePortal);
      return transact(dir, (st) => {
        st.iet.portals = list;
        return 0;
      });
    }
    default:
      io.eprint('usage: hostsim iet list | iet sessions | iet portal [<ip:port>...|--any]');
      return 2;
  }
}

/** Fault-injection verb: the --op value (new, delete, show, update). */
export function ietVerb(args: string[]): string {
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '--op' || a === '-o') return args[i + 1] ?? '';
    if (a.startsWith('--op=')) return a.slice(5);
    if (a.startsWith('-o') && a.length > 2) return a.slice(2);
  }
  return '';
}
