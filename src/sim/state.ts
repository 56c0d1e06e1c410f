/**
 * The simulator's state folder: one JSON document (`state.json`) plus the
 * backing files of simulated devices and the fault-injection folders.
 *
 * Every change goes through `transact`: take an exclusive lock file (created
 * with O_EXCL, bounded retries, stale locks of dead processes broken safely),
 * read the document, let the caller change it, then write a temporary file
 * and rename it over `state.json`. Readers that only look use `readState`,
 * which never sees a half-written document because of the rename.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

/** A disk attached to a simulated VM. */
export interface Disk {
  /** Guest device name as given (xvdb, sdb, scsi1, virtio2). */
  dev: string;
  /** Xen device number (0 for Proxmox slots). */
  devid: number;
  /** The path the tool was given. */
  target: string;
  /** Canonical host file behind the target (for sharing checks). */
  backing: string;
  mode: 'r' | 'w';
  kind: 'file' | 'phy';
  via: 'xm' | 'xl' | 'qm';
  /** Loop device number a Xen `file:` backend uses. */
  loop?: number;
  /** Xen `w!` (sharing check skipped). */
  forced?: boolean;
  /** Proxmox drive options after the path, as stored in the config (`ro=1,size=1G`). */
  options?: string;
}

export interface Vm {
  name: string;
  domid: number;
  disks: Disk[];
  /** Proxmox settings changed with `qm set` (other than drives). */
  config?: Record<string, string>;
}

export interface Lv {
  name: string;
  extents: number;
  /** Name of the origin LV when this LV is a snapshot. */
  origin?: string;
  /** Backing file, relative to the state folder. */
  backing: string;
  readOnly?: boolean;
}

export interface Vg {
  name: string;
  extentSize: number;
  extents: number;
  lvs: Lv[];
}

export interface Lun {
  lun: number;
  path: string;
  type: string;
  iomode: string;
}

export interface Target {
  tid: number;
  name: string;
  luns: Lun[];
}

export interface NodeRecord {
  iqn: string;
  portal: string;
  tpgt: number;
  /** Disk LUNs a real target (reached with libiscsi) reported at discovery; absent for simulated targets. */
  luns?: number[];
}

export interface Session {
  sid: number;
  iqn: string;
  portal: string;
  tpgt: number;
  /** LUNs of a real target that answered at login; their by-path devices have no host file behind them. */
  luns?: number[];
}

/** A target served by something other than the simulated IET (set up by tests). */
export interface ForeignTarget {
  portal: string;
  iqn: string;
  luns: { lun: number; path: string }[];
}

export interface SimState {
  version: 1;
  nextDomid: number;
  vms: Vm[];
  vgs: Vg[];
  iet: { portals: string[]; targets: Target[] };
  iscsi: { nextSid: number; nodes: NodeRecord[]; sessions: Session[]; foreign: ForeignTarget[] };
}

export function emptyState(): SimState {
  return {
    version: 1,
    nextDomid: 1,
    vms: [],
    vgs: [],
    iet: { portals: [], targets: [] },
    iscsi: { nextSid: 1, nodes: [], sessions: [], foreign: [] },
  };
}

const STATE_FILE = 'state.json';
const LOCK_FILE = '.lock';
const BREAK_FILE = '.lock.break';
/** Give up on the lock after this long (a live holder never keeps it this long). */
const LOCK_DEADLINE_MS = 60_000;
/** A lock whose holder is alive but older than this is considered abandoned. */
const LOCK_MAX_AGE_MS = 120_000;
/** A lock file still empty after this long was left by a writer that died. */
const EMPTY_LOCK_GRACE_MS = 10_000;

export class LockTimeout extends Error {
  constructor(dir: string) {
    super(`hostsim: could not lock the state folder ${dir}`);
  }
}

export function ensureDir(dir: string): void {
  mkdirSync(dir, { recursive: true });
}

/** Blocks the thread for `ms` milliseconds (short waits between lock attempts). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export function readState(dir: string): SimState {
  let text: string;
  try {
    text = readFileSync(join(dir, STATE_FILE), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
    throw e;
  }
  const parsed = JSON.parse(text) as Partial<SimState>;
  return { ...emptyState(), ...parsed } as SimState;
}

/** Writes `data` to `file` atomically: a temporary file in the same folder, fsync, rename. */
export function writeFileAtomic(file: string, data: string): void {
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o644);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

function writeState(dir: string, st: SimState): void {
  writeFileAtomic(join(dir, STATE_FILE), `${JSON.stringify(st, null, 2)}\n`);
}

function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function ageOf(file: string): number | undefined {
  try {
    return Date.now() - statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}

function readQuiet(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * Removes the lock if its holder is dead (or the lock is very old). A second
 * lock file serialises breakers, so a breaker never removes a lock that a live
 * process took after the stale one was seen.
 */
function breakIfStale(dir: string): void {
  const lock = join(dir, LOCK_FILE);
  const seen = readQuiet(lock);
  if (seen === undefined) return;
  const pid = Number.parseInt(seen.split(' ')[0] ?? '', 10);
  const age = ageOf(lock);
  if (age === undefined) return;
  // An empty lock file is one being written right now (open with O_EXCL, then write):
  // only a writer that died in between leaves it, so wait a while before breaking it.
  if (!Number.isInteger(pid) || pid <= 0) {
    if (age < EMPTY_LOCK_GRACE_MS) return;
  } else if (pidAlive(pid) && age < LOCK_MAX_AGE_MS) return;
  const breaker = join(dir, BREAK_FILE);
  try {
    writeFileSync(breaker, String(process.pid), { flag: 'wx' });
  } catch {
    // Another process is breaking it; drop a breaker left by a dead process.
    const other = Number.parseInt(readQuiet(breaker) ?? '', 10);
    const dead = Number.isInteger(other) && other > 0 ? !pidAlive(other) : (ageOf(breaker) ?? 0) >= EMPTY_LOCK_GRACE_MS;
    if (dead) {
      try {
        unlinkSync(breaker);
      } catch {
        /* someone else did */
      }
    }
    return;
  }
  try {
    if (readQuiet(lock) === seen && (seen !== '' || (ageOf(lock) ?? 0) >= EMPTY_LOCK_GRACE_MS)) unlinkSync(lock);
  } catch {
    /* already gone */
  } finally {
    try {
      unlinkSync(breaker);
    } catch {
      /* ignore */
    }
  }
}

/** Takes the state folder's lock; returns the function that releases it. */
export function lock(dir: string): () => void {
  const file = join(dir, LOCK_FILE);
  const token = `${process.pid} ${randomBytes(8).toString('hex')}`;
  const deadline = Date.now() + LOCK_DEADLINE_MS;
  let delay = 1;
  for (;;) {
    try {
      writeFileSync(file, token, { flag: 'wx' });
      return () => {
        if (readQuiet(file) === token) {
          try {
            unlinkSync(file);
          } catch {
            /* ignore */
          }
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    breakIfStale(dir);
    if (Date.now() > deadline) throw new LockTimeout(dir);
    sleepSync(delay + Math.floor(Math.random() * delay));
    delay = Math.min(delay * 2, 40);
  }
}

/** Runs `fn` under the lock and returns its value. */
export function withLock<T>(dir: string, fn: () => T): T {
  const release = lock(dir);
  try {
    return fn();
  } finally {
    release();
  }
}

/**
 * Runs `fn` on the current state under the lock. The changed state is written
 * back only when `fn` returns 0 (success): a refused command changes nothing.
 * Commands that apply several independent changes (lvremove of several LVs,
 * iscsiadm logging in to several nodes) pass `always` to keep the ones that
 * succeeded.
 */
export function transact(dir: string, fn: (st: SimState) => number, always = false): number {
  return withLock(dir, () => {
    const st = readState(dir);
    const code = fn(st);
    if (code === 0 || always) writeState(dir, st);
    return code;
  });
}

/** Folder holding the backing files of simulated devices. */
export function dataDir(dir: string, ...parts: string[]): string {
  return join(dir, 'data', ...parts);
}
