/**
 * LVM2 command-line tools on a simulated volume group (no device-mapper needed):
 *
 *   lvcreate -L <size> -n <lv> <vg>                 (also -l <extents>|<n>%FREE|%VG, --size=, -n vg/lv)
 *   lvcreate -s -L <size> -n <snap> <vg>/<origin>
 *   lvremove [-f] <vg>/<lv>|<vg>...                 (removing an origin removes its snapshots)
 *   lvs [--noheadings] [--units u] [--nosuffix] [-o f,...] [--separator s] [<vg>|<vg>/<lv>...]
 *   vgs [same options] [<vg>...]
 *   lvrename <vg> <old> <new> | lvrename <vg>/<old> [<vg>/]<new>
 *   lvextend -L <size> <vg>/<lv>                    (grows the LV and its backing file; never shrinks)
 *   lvm <one of the above> ...
 *
 * Management verbs (not real tools):
 *   hostsim lvm vgcreate <vg> <sizeBytes> [<extentSizeBytes>]
 *   hostsim lvm vgremove <vg>
 *   hostsim lvm path <vg>/<lv>          the sparse file that backs the LV
 *
 * Output formats and messages were checked against lvm2 2.03.16 (Debian 12) on a
 * loop device: 2-space indent, every column padded to max(header, values), numbers
 * right-aligned, errors on stderr, exit 5 (ECMD_FAILED) for refused operations and
 * 3 (EINVALID_CMD_LINE) for bad command lines.
 */
import { createRequire } from 'node:module';
import { closeSync, fstatSync, ftruncateSync, mkdirSync, openSync, readFileSync, unlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { findLv, lvBackingRel, lvDevPath, lvHolders } from './devices.js';
import { padEnd, padStart, type Io } from './io.js';
import { readState, transact, type Lv, type SimState, type Vg } from './state.js';

const DEFAULT_EXTENT = 4 * 1024 * 1024;
const ECMD_FAILED = 5;
const EINVALID_CMD_LINE = 3;

// ---------------------------------------------------------------- option parsing

interface OptSpec {
  long: string;
  short?: string;
  arg: boolean;
}

function spec(list: [string, string | undefined, boolean][]): OptSpec[] {
  return list.map(([long, short, arg]) => ({ long, ...(short ? { short } : {}), arg }));
}

const COMMON = spec([
  ['quiet', 'q', false],
  ['verbose', 'v', false],
  ['debug', 'd', false],
  ['yes', 'y', false],
  ['test', 't', false],
  ['config', undefined, true],
  ['driverloaded', undefined, true],
  ['autobackup', 'A', true],
  ['noudevsync', undefined, false],
  ['nolocking', undefined, false],
  ['readonly', undefined, false],
  ['commandprofile', undefined, true],
]);

const REPORT = spec([
  ['noheadings', undefined, false],
  ['nosuffix', undefined, false],
  ['units', undefined, true],
  ['options', 'o', true],
  ['sort', 'O', true],
  ['separator', undefined, true],
  ['aligned', undefined, false],
  ['all', 'a', false],
  ['unbuffered', undefined, false],
  ['reportformat', undefined, true],
  ['binary', undefined, false],
  ['select', 'S', true],
]);

const SPECS: Record<string, OptSpec[]> = {
  lvcreate: [
    ...COMMON,
    ...spec([
      ['size', 'L', true],
      ['extents', 'l', true],
      ['name', 'n', true],
      ['snapshot', 's', false],
      ['activate', 'a', true],
      ['zero', 'Z', true],
      ['wipesignatures', 'W', true],
      ['permission', 'p', true],
      ['addtag', undefined, true],
      ['setactivationskip', 'k', true],
      ['ignoremonitoring', undefined, false],
    ]),
  ],
  lvremove: [...COMMON, ...spec([['force', 'f', false], ['nohistory', undefined, false], ['select', 'S', true]])],
  lvrename: [...COMMON, ...spec([['force', 'f', false]])],
  lvextend: [...COMMON, ...spec([['size', 'L', true], ['resizefs', 'r', false]])],
  lvs: [...COMMON, ...REPORT],
  vgs: [...COMMON, ...REPORT],
};

interface Parsed {
  opts: Map<string, string[]>;
  pos: string[];
}

function parseOpts(tool: string, args: string[], io: Io): Parsed | number {
  const table = SPECS[tool] ?? COMMON;
  const opts = new Map<string, string[]>();
  const pos: string[] = [];
  const add = (o: OptSpec, v: string) => opts.set(o.long, [...(opts.get(o.long) ?? []), v]);
  const fail = (msg: string) => {
    io.eprint(msg);
    io.eprint('  Error during parsing of command line.');
    return EINVALID_CMD_LINE;
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '--') {
      pos.push(...args.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const o = table.find((x) => x.long === name);
      if (!o) return fail(`${tool}: unrecognized option '${a}'`);
      if (!o.arg) {
        add(o, '');
        continue;
      }
      const v = eq >= 0 ? a.slice(eq + 1) : args[++i];
      if (v === undefined) return fail(`${tool}: option '--${name}' requires an argument`);
      add(o, v);
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const c = a[j] as string;
        const o = table.find((x) => x.short === c);
        if (!o) return fail(`${tool}: invalid option -- '${c}'`);
        if (!o.arg) {
          add(o, '');
          continue;
        }
        const v = j + 1 < a.length ? a.slice(j + 1) : args[++i];
        if (v === undefined) return fail(`${tool}: option requires an argument -- '${c}'`);
        add(o, v);
        break;
      }
      continue;
    }
    pos.push(a);
  }
  return { opts, pos };
}

function last(p: Parsed, name: string): string | undefined {
  const v = p.opts.get(name);
  return v ? v[v.length - 1] : undefined;
}

// ---------------------------------------------------------------- sizes

const POWERS = 'kmgtpe';

/** lvcreate's size argument: a number with an optional unit (default MiB), units binary, any case. */
export function parseSizeArg(s: string): number | undefined {
  const m = /^(\d+(?:\.\d*)?|\.\d+)([bBsSkKmMgGtTpPeE]?)$/.exec(s);
  if (!m?.[1]) return undefined;
  const value = Number(m[1]);
  const u = (m[2] || 'm').toLowerCase();
  const mult = u === 'b' ? 1 : u === 's' ? 512 : 1024 ** (POWERS.indexOf(u) + 1);
  return Math.ceil(value * mult);
}

/** Long human size as LVM prints it in messages ("152.00 MiB"). */
function displaySize(bytes: number): string {
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let unit = 'B';
  let value = bytes;
  for (let i = units.length; i >= 1; i--) {
    if (bytes >= 1024 ** i) {
      unit = units[i - 1] as string;
      value = bytes / 1024 ** i;
      break;
    }
  }
  const shown = Math.floor(value * 100 + 1e-9) / 100;
  return `${shown < value - 1e-9 ? '<' : ''}${shown.toFixed(2)} ${unit}`;
}

/** A size in report units (`--units`, default h), as lvs/vgs print it. */
export function formatSize(bytes: number, units: string, nosuffix: boolean): string {
  const u = units || 'h';
  if (u === 'b' || u === 'B') return `${bytes}${nosuffix ? '' : 'B'}`;
  if (u === 's' || u === 'S') return `${Math.floor(bytes / 512)}${nosuffix ? '' : 'S'}`;
  const si = u === 'H' || /^[KMGTPE]$/.test(u);
  const base = si ? 1000 : 1024;
  let letter = u.toLowerCase();
  if (letter === 'h') {
    if (bytes === 0) return '0 ';
    letter = '';
    for (let i = POWERS.length; i >= 1; i--) {
      if (bytes >= base ** i) {
        letter = POWERS[i - 1] as string;
        break;
      }
    }
    if (!letter) return `${bytes.toFixed(2)}${nosuffix ? '' : 'B'}`;
  }
  const power = POWERS.indexOf(letter) + 1;
  const value = bytes / base ** power;
  const shown = Math.floor(value * 100 + 1e-9) / 100;
  const suffix = nosuffix ? '' : si ? letter.toUpperCase() : letter;
  return `${shown < value - 1e-9 ? '<' : ''}${shown.toFixed(2)}${suffix}`;
}

// ---------------------------------------------------------------- names

const RESERVED_PREFIXES = ['snapshot', 'pvmove'];
const RESERVED_PARTS = ['_cdata', '_cmeta', '_corig', '_mimage', '_mlog', '_pmspare', '_rimage', '_rmeta', '_tdata', '_tmeta', '_vdata', '_vorigin'];

function checkLvName(io: Io, name: string): boolean {
  for (const p of RESERVED_PREFIXES) {
    if (name.startsWith(p)) {
      io.eprint(`  Names starting "${p}" are reserved. Please choose a different LV name.`);
      return false;
    }
  }
  for (const p of RESERVED_PARTS) {
    if (name.includes(p)) {
      io.eprint(`  Names including "${p}" are reserved. Please choose a different LV name.`);
      return false;
    }
  }
  if (!/^[A-Za-z0-9+_.][A-Za-z0-9+_.-]*$/.test(name) || name === '.' || name === '..' || name.length > 127) {
    io.eprint(`  Logical volume name "${name}" is invalid.`);
    return false;
  }
  return true;
}

function validVgName(name: string): boolean {
  return /^[A-Za-z0-9+_.][A-Za-z0-9+_.-]*$/.test(name) && name !== '.' && name !== '..' && name.length <= 127;
}

/** `vg/lv`, `/dev/vg/lv` or `/dev/mapper/vg-lv` → [vg, lv]; `vg` → [vg, undefined]. */
function splitLvArg(arg: string): [string, string | undefined] {
  const mapper = /^\/dev\/mapper\/(.+)$/.exec(arg);
  if (mapper?.[1]) {
    const m = /^((?:[^-]|--)+)-((?:[^-]|--)+)$/.exec(mapper[1]);
    if (m?.[1] && m[2]) return [m[1].replace(/--/g, '-'), m[2].replace(/--/g, '-')];
  }
  const p = arg.replace(/^\/dev\//, '').replace(/\/+$/, '');
  const i = p.indexOf('/');
  return i < 0 ? [p, undefined] : [p.slice(0, i), p.slice(i + 1)];
}

function vgNotFound(io: Io, vg: string): number {
  io.eprint(`  Volume group "${vg}" not found`);
  io.eprint(`  Cannot process volume group ${vg}`);
  return ECMD_FAILED;
}

function usedExtents(vg: Vg): number {
  return vg.lvs.reduce((n, l) => n + l.extents, 0);
}

function snapshotsOf(vg: Vg, lv: Lv): Lv[] {
  return vg.lvs.filter((l) => l.origin === lv.name);
}

function makeSparse(file: string, size: number): void {
  mkdirSync(dirname(file), { recursive: true });
  const fd = openSync(file, 'w', 0o600);
  try {
    ftruncateSync(fd, size);
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------- lvcreate

function lvcreate(io: Io, dir: string, args: string[]): number {
  const p = parseOpts('lvcreate', args, io);
  if (typeof p === 'number') return p;
  const snapshot = p.opts.has('snapshot');
  const sizeArg = last(p, 'size');
  const extentsArg = last(p, 'extents');
  if (sizeArg === undefined && extentsArg === undefined) {
    io.eprint("  No command with matching syntax recognised.  Run 'lvcreate --help' for more information.");
    return EINVALID_CMD_LINE;
  }
  if (sizeArg !== undefined && extentsArg !== undefined) {
    io.eprint('  Please specify either size or extents (not both).');
    return EINVALID_CMD_LINE;
  }
  let bytes: number | undefined;
  if (sizeArg !== undefined) {
    bytes = parseSizeArg(sizeArg);
    if (bytes === undefined) {
      io.eprint("  Can't parse size argument.");
      io.eprint(`  Invalid argument for --size: ${sizeArg}`);
      io.eprint('  Error during parsing of command line.');
      return EINVALID_CMD_LINE;
    }
    if (bytes === 0) {
      io.eprint('  --size may not be zero.');
      io.eprint("  Run `lvcreate --help' for more information.");
      return EINVALID_CMD_LINE;
    }
  }
  let extentsReq: { n: number; pct?: 'FREE' | 'VG' } | undefined;
  if (extentsArg !== undefined) {
    const m = /^(\d+)(?:%(FREE|VG))?$/.exec(extentsArg);
    if (!m?.[1] || Number(m[1]) === 0) {
      io.eprint(`  Invalid argument for --extents: ${extentsArg}`);
      io.eprint('  Error during parsing of command line.');
      return EINVALID_CMD_LINE;
    }
    extentsReq = { n: Number(m[1]), ...(m[2] ? { pct: m[2] as 'FREE' | 'VG' } : {}) };
  }
  if (snapshot && p.opts.has('zero')) {
    io.eprint('  Option --zero is unsupported with snapshots.');
    io.eprint("  Run `lvcreate --help' for more information.");
    return EINVALID_CMD_LINE;
  }
  const perm = last(p, 'permission');
  if (perm !== undefined && perm !== 'r' && perm !== 'rw') {
    io.eprint(`  Invalid argument for --permission: ${perm}`);
    io.eprint('  Error during parsing of command line.');
    return EINVALID_CMD_LINE;
  }

  // Names: -n may carry the VG ("vg/lv"); the positional is the VG, or vg/origin for -s.
  let nameArg = last(p, 'name');
  let nameVg: string | undefined;
  if (nameArg?.includes('/')) [nameVg, nameArg] = splitLvArg(nameArg) as [string, string];
  let vgName: string | undefined;
  let originName: string | undefined;
  const pos = p.pos[0];
  if (snapshot) {
    if (!pos) {
      io.eprint('  Please specify a logical volume to act as the snapshot origin.');
      return EINVALID_CMD_LINE;
    }
    const [v, o] = splitLvArg(pos);
    if (!o) {
      io.eprint('  Please specify a logical volume to act as the snapshot origin.');
      return EINVALID_CMD_LINE;
    }
    vgName = v;
    originName = o;
  } else {
    vgName = pos ? splitLvArg(pos)[0] : undefined;
  }
  if (p.pos.length > 1) {
    io.eprint("  No command with matching syntax recognised.  Run 'lvcreate --help' for more information.");
    return EINVALID_CMD_LINE;
  }
  if (nameVg && vgName && nameVg !== vgName) {
    io.eprint(`  Inconsistent volume group names given: "${nameVg}" and "${vgName}"`);
    io.eprint("  Run `lvcreate --help' for more information.");
    return EINVALID_CMD_LINE;
  }
  vgName ??= nameVg;
  if (!vgName) {
    io.eprint('  Please provide a volume group name');
    io.eprint("  Run `lvcreate --help' for more information.");
    return EINVALID_CMD_LINE;
  }
  if (!validVgName(vgName)) {
    io.eprint(`  Volume group name "${vgName}" has invalid characters.`);
    return EINVALID_CMD_LINE;
  }
  if (nameArg !== undefined && !checkLvName(io, nameArg)) return EINVALID_CMD_LINE;

  return transact(dir, (st) => {
    const vg = st.vgs.find((v) => v.name === vgName);
    if (!vg) return vgNotFound(io, vgName as string);
    let origin: Lv | undefined;
    if (originName !== undefined) {
      origin = vg.lvs.find((l) => l.name === originName);
      if (!origin) {
        io.eprint(`  Snapshot origin LV ${originName} not found in Volume group ${vg.name}.`);
        return ECMD_FAILED;
      }
      if (origin.origin) {
        io.eprint('  Snapshots of snapshots are not supported.');
        return ECMD_FAILED;
      }
    }
    let name = nameArg;
    if (name === undefined) {
      let i = 0;
      while (vg.lvs.some((l) => l.name === `lvol${i}`)) i++;
      name = `lvol${i}`;
    }
    if (vg.lvs.some((l) => l.name === name)) {
      io.eprint(`  Logical Volume "${name}" already exists in volume group "${vg.name}"`);
      return ECMD_FAILED;
    }
    const free = vg.extents - usedExtents(vg);
    let extents: number;
    if (bytes !== undefined) {
      extents = Math.ceil(bytes / vg.extentSize);
      if (bytes % vg.extentSize !== 0) io.print(`  Rounding up size to full physical extent ${displaySize(extents * vg.extentSize)}`);
    } else {
      const req = extentsReq as { n: number; pct?: 'FREE' | 'VG' };
      extents = req.pct === 'FREE' ? Math.floor((free * req.n) / 100) : req.pct === 'VG' ? Math.floor((vg.extents * req.n) / 100) : req.n;
    }
    if (extents > free || extents === 0) {
      io.eprint(`  Volume group "${vg.name}" has insufficient free space (${free} extents): ${extents} required.`);
      return ECMD_FAILED;
    }
    const backing = freeBackingRel(st, vg.name, name);
    const file = resolve(dir, backing);
    if (origin) {
      mkdirSync(dirname(file), { recursive: true });
      // Loaded here, not at the top: only a snapshot copies, and every simulated command pays for what it loads.
      const { execFileSync } = createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process');
      execFileSync('cp', ['--sparse=always', '--reflink=auto', resolve(dir, origin.backing), file], { stdio: 'ignore' });
    } else {
      makeSparse(file, extents * vg.extentSize);
    }
    vg.lvs.push({
      name,
      extents,
      backing,
      ...(origin ? { origin: origin.name } : {}),
      ...(perm === 'r' ? { readOnly: true } : {}),
    });
    io.print(`  Logical volume "${name}" created.`);
    return 0;
  });
}

/**
 * The backing file for a new LV. A renamed LV keeps its file (as a real LV keeps
 * its extents), so a later LV of the old name must not reuse that file.
 */
function freeBackingRel(st: SimState, vg: string, lv: string): string {
  const taken = new Set(st.vgs.flatMap((g) => g.lvs.map((l) => l.backing)));
  let rel = lvBackingRel(vg, lv);
  for (let i = 1; taken.has(rel); i++) rel = join(dirname(lvBackingRel(vg, lv)), `${lv}.${i}.img`);
  return rel;
}

// ---------------------------------------------------------------- lvextend

/**
 * lvextend -L <size> VG/LV: the absolute size only (what VBS's pattern uses).
 * Messages and exit codes as lvm2 2.03.16's: a size not larger than the LV's
 * is refused (5), as is an origin with snapshots (they must be inactive) and
 * a VG without the free extents. The backing file grows in place: data kept.
 */
function lvextend(io: Io, dir: string, args: string[]): number {
  const p = parseOpts('lvextend', args, io);
  if (typeof p === 'number') return p;
  const sizeArg = last(p, 'size');
  const target = p.pos[0];
  if (sizeArg === undefined || p.pos.length !== 1 || !target) {
    io.eprint('  Please specify either size or extents but not both.');
    return EINVALID_CMD_LINE;
  }
  if (sizeArg.startsWith('+') || sizeArg.startsWith('-')) {
    io.eprint(`  Relative sizes are not simulated: ${sizeArg}`);
    return EINVALID_CMD_LINE;
  }
  const bytes = parseSizeArg(sizeArg);
  if (bytes === undefined || bytes === 0) {
    io.eprint(`  Invalid argument for --size: ${sizeArg}`);
    io.eprint('  Error during parsing of command line.');
    return EINVALID_CMD_LINE;
  }
  const [vgName, lvName] = splitLvArg(target);
  if (!lvName) {
    io.eprint(`  Path required for Logical Volume "${target}".`);
    return EINVALID_CMD_LINE;
  }
  return transact(dir, (st) => {
    const vg = st.vgs.find((v) => v.name === vgName);
    if (!vg) return vgNotFound(io, vgName);
    const lv = vg.lvs.find((l) => l.name === lvName);
    if (!lv) {
      io.eprint(`  Failed to find logical volume "${vgName}/${lvName}"`);
      return ECMD_FAILED;
    }
    const extents = Math.ceil(bytes / vg.extentSize);
    if (bytes % vg.extentSize !== 0) io.print(`  Rounding size to boundary between physical extents: ${displaySize(extents * vg.extentSize)}.`);
    if (extents === lv.extents) {
      io.eprint(`  New size (${extents} extents) matches existing size (${lv.extents} extents).`);
      return ECMD_FAILED;
    }
    if (extents < lv.extents) {
      io.eprint(`  New size given (${extents} extents) not larger than existing size (${lv.extents} extents)`);
      return ECMD_FAILED;
    }
    if (snapshotsOf(vg, lv).length) {
      io.eprint('  Snapshot origin volumes can be resized only while inactive: try lvchange -an.');
      return ECMD_FAILED;
    }
    const free = vg.extents - usedExtents(vg);
    if (extents - lv.extents > free) {
      io.eprint(`  Insufficient free space: ${extents - lv.extents} extents needed, but only ${free} available`);
      return ECMD_FAILED;
    }
    const before = lv.extents * vg.extentSize;
    growSparse(resolve(dir, lv.backing), extents * vg.extentSize);
    lv.extents = extents;
    io.print(`  Size of logical volume ${vg.name}/${lv.name} changed from ${displaySize(before)} (${before / vg.extentSize} extents) to ${displaySize(extents * vg.extentSize)} (${extents} extents).`);
    io.print(`  Logical volume ${vg.name}/${lv.name} successfully resized.`);
    return 0;
  });
}

/** Extends a backing file to size, keeping what it holds (a file already that long is left alone). */
function growSparse(file: string, size: number): void {
  const fd = openSync(file, 'r+');
  try {
    if (fstatSync(fd).size < size) ftruncateSync(fd, size);
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------- lvrename

/** lvrename VG OLD NEW, or lvrename VG/OLD [VG/]NEW (tools/lvrename.c). */
function lvrename(io: Io, dir: string, args: string[]): number {
  const p = parseOpts('lvrename', args, io);
  if (typeof p === 'number') return p;
  let vgName: string;
  let oldArg: string;
  let newArg: string;
  if (p.pos.length === 3) {
    [vgName, oldArg, newArg] = p.pos.map((a) => a.replace(/^\/dev\//, '')) as [string, string, string];
    if (oldArg.includes('/') && splitLvArg(oldArg)[0] !== vgName) {
      io.eprint(`  Please use a single volume group name ("${vgName}" or "${splitLvArg(oldArg)[0]}")`);
      return EINVALID_CMD_LINE;
    }
  } else if (p.pos.length === 2) {
    [oldArg, newArg] = p.pos as [string, string];
    vgName = splitLvArg(oldArg)[0];
    if (!oldArg.replace(/^\/dev\//, '').includes('/')) {
      io.eprint('  Path required for Logical Volume "' + oldArg + '".');
      return EINVALID_CMD_LINE;
    }
  } else {
    io.eprint('  Old and new logical volume names required');
    return EINVALID_CMD_LINE;
  }
  if (!validVgName(vgName)) {
    io.eprint('  Please provide a valid volume group name');
    return EINVALID_CMD_LINE;
  }
  if (newArg.includes('/') && splitLvArg(newArg)[0] !== vgName) {
    io.eprint(`  Logical volume names must have the same volume group ("${vgName}" or "${splitLvArg(newArg)[0]}")`);
    return EINVALID_CMD_LINE;
  }
  const oldName = oldArg.slice(oldArg.lastIndexOf('/') + 1);
  const newName = newArg.slice(newArg.lastIndexOf('/') + 1);
  if (!newName) {
    io.eprint('  New logical volume name may not be blank');
    return ECMD_FAILED;
  }
  if (!checkLvName(io, newName)) return EINVALID_CMD_LINE;
  if (oldName === newName) {
    io.eprint('  Old and new logical volume names must differ');
    return EINVALID_CMD_LINE;
  }
  return transact(dir, (st) => {
    const vg = st.vgs.find((v) => v.name === vgName);
    if (!vg) return vgNotFound(io, vgName);
    const lv = vg.lvs.find((l) => l.name === oldName);
    if (!lv) {
      io.eprint(`  Existing logical volume "${oldName}" not found in volume group "${vgName}"`);
      return ECMD_FAILED;
    }
    if (vg.lvs.some((l) => l.name === newName)) {
      io.eprint(`  Logical Volume "${newName}" already exists in volume group "${vgName}"`);
      return ECMD_FAILED;
    }
    for (const snap of snapshotsOf(vg, lv)) snap.origin = newName;
    lv.name = newName;
    io.print(`  Renamed "${oldName}" to "${newName}" in volume group "${vgName}"`);
    return 0;
  });
}

// ---------------------------------------------------------------- lvremove

function readStdin(): string {
  try {
    return readFileSync(0, 'utf8');
  } catch {
    return '';
  }
}

function lvremove(io: Io, dir: string, args: string[]): number {
  const p = parseOpts('lvremove', args, io);
  if (typeof p === 'number') return p;
  if (p.pos.length === 0) {
    io.eprint("  No command with matching syntax recognised.  Run 'lvremove --help' for more information.");
    io.eprint('  Correct command syntax is:');
    io.print('  lvremove VG|LV|Tag|Select ...\n');
    return EINVALID_CMD_LINE;
  }
  const force = p.opts.has('force');
  const targets = p.pos.map(splitLvArg);

  // Answers to prompts come from stdin; read it (outside the lock) only when a prompt will be shown.
  let input: string[] | undefined;
  if (!force) {
    const st = readState(dir);
    const prompts = targets.some(([vg, lv]) => {
      const g = st.vgs.find((v) => v.name === vg);
      return !!g && (lv === undefined ? g.lvs.length > 0 : g.lvs.some((l) => l.name === lv));
    });
    if (prompts) input = readStdin().split('\n');
  }
  const ask = (question: string): boolean => {
    io.write(question);
    const answer = input?.shift();
    if (answer === undefined) {
      io.write('\n');
      return false;
    }
    return /^\s*y/i.test(answer);
  };

  const removedFiles: string[] = [];
  const code = transact(
    dir,
    (st) => {
      let rc = 0;
      const removeGroup = (vg: Vg, lv: Lv): void => {
        if (!vg.lvs.includes(lv)) return; // already removed with its origin
        const snaps = snapshotsOf(vg, lv);
        for (const x of [...snaps, lv]) {
          if (lvHolders(st, dir, x).length) {
            io.eprint(`  Logical volume ${vg.name}/${x.name} in use.`);
            rc = ECMD_FAILED;
            return;
          }
        }
        if (snaps.length && !force) {
          if (!ask(`Removing origin ${lv.name} will also remove ${snaps.length} snapshots(s). Proceed? [y/n]: `)) {
            io.print(`  Logical volume "${lv.name}" not removed.`);
            rc = ECMD_FAILED;
            return;
          }
        }
        for (const x of [...snaps, lv]) {
          if (!force && !ask(`Do you really want to remove active logical volume ${vg.name}/${x.name}? [y/n]: `)) {
            io.print(`  Logical volume "${x.name}" not removed.`);
            rc = ECMD_FAILED;
            return;
          }
          vg.lvs.splice(vg.lvs.indexOf(x), 1);
          removedFiles.push(resolve(dir, x.backing));
          io.print(`  Logical volume "${x.name}" successfully removed.`);
        }
      };
      for (const [vgName, lvName] of targets) {
        const vg = st.vgs.find((v) => v.name === vgName);
        if (!vg) {
          rc = vgNotFound(io, vgName);
          continue;
        }
        if (lvName === undefined) {
          for (const lv of vg.lvs.filter((l) => !l.origin)) removeGroup(vg, lv);
          for (const lv of [...vg.lvs]) removeGroup(vg, lv);
          continue;
        }
        const lv = vg.lvs.find((l) => l.name === lvName);
        if (!lv) {
          io.eprint(`  Failed to find logical volume "${vgName}/${lvName}"`);
          rc = ECMD_FAILED;
          continue;
        }
        removeGroup(vg, lv);
      }
      return rc;
    },
    true,
  );
  for (const f of removedFiles) {
    try {
      unlinkSync(f);
    } catch {
      /* already gone */
    }
  }
  return code;
}

// ---------------------------------------------------------------- lvs / vgs

interface Field<T> {
  header: string;
  /** Minimum column width (lib/report/columns.h). */
  width: number;
  right: boolean;
  value: (row: T, fmt: (bytes: number) => string) => string;
}

interface LvRow {
  st: SimState;
  dir: string;
  vg: Vg;
  lv: Lv;
}

function lvAttr(r: LvRow): string {
  const snaps = snapshotsOf(r.vg, r.lv).length > 0;
  const open = lvHolders(r.st, r.dir, r.lv).length > 0;
  const type = r.lv.origin ? 's' : snaps ? 'o' : '-';
  const target = r.lv.origin || snaps ? 's' : '-';
  return `${type}${r.lv.readOnly ? 'r' : 'w'}i-a${open ? 'o' : '-'}${target}---`;
}

const LV_FIELDS: Record<string, Field<LvRow>> = {
  lv_name: { header: 'LV', width: 4, right: false, value: (r) => r.lv.name },
  vg_name: { header: 'VG', width: 4, right: false, value: (r) => r.vg.name },
  lv_attr: { header: 'Attr', width: 4, right: false, value: lvAttr },
  lv_size: { header: 'LSize', width: 5, right: true, value: (r, f) => f(r.lv.extents * r.vg.extentSize) },
  pool_lv: { header: 'Pool', width: 4, right: false, value: () => '' },
  origin: { header: 'Origin', width: 6, right: false, value: (r) => r.lv.origin ?? '' },
  origin_size: { header: 'OSize', width: 5, right: true,
    value: (r, f) => {
      const o = r.lv.origin ? r.vg.lvs.find((l) => l.name === r.lv.origin) : undefined;
      return o ? f(o.extents * r.vg.extentSize) : '';
    },
  },
  data_percent: { header: 'Data%', width: 6, right: true, value: (r) => (r.lv.origin ? '0.00' : '') },
  snap_percent: { header: 'Snap%', width: 6, right: true, value: (r) => (r.lv.origin ? '0.00' : '') },
  metadata_percent: { header: 'Meta%', width: 6, right: true, value: () => '' },
  move_pv: { header: 'Move', width: 4, right: false, value: () => '' },
  mirror_log: { header: 'Log', width: 3, right: false, value: () => '' },
  copy_percent: { header: 'Cpy%Sync', width: 8, right: true, value: () => '' },
  convert_lv: { header: 'Convert', width: 7, right: false, value: () => '' },
  lv_path: { header: 'Path', width: 4, right: false, value: (r) => lvDevPath(r.vg.name, r.lv.name) },
  lv_dm_path: { header: 'DMPath', width: 6, right: false,
    value: (r) => `/dev/mapper/${r.vg.name.replace(/-/g, '--')}-${r.lv.name.replace(/-/g, '--')}`,
  },
  lv_active: { header: 'Active', width: 6, right: false, value: () => 'active' },
  seg_count: { header: '#Seg', width: 4, right: true, value: () => '1' },
  vg_size: { header: 'VSize', width: 5, right: true, value: (r, f) => f(r.vg.extents * r.vg.extentSize) },
  vg_free: { header: 'VFree', width: 5, right: true, value: (r, f) => f((r.vg.extents - usedExtents(r.vg)) * r.vg.extentSize) },
};
const LV_DEFAULT = ['lv_name', 'vg_name', 'lv_attr', 'lv_size', 'pool_lv', 'origin', 'data_percent', 'metadata_percent', 'move_pv', 'mirror_log', 'copy_percent', 'convert_lv'];
const LV_ALIASES: Record<string, string> = { name: 'lv_name', size: 'lv_size', attr: 'lv_attr', path: 'lv_path', snap_percent: 'snap_percent' };

interface VgRow {
  vg: Vg;
}

const VG_FIELDS: Record<string, Field<VgRow>> = {
  vg_name: { header: 'VG', width: 4, right: false, value: (r) => r.vg.name },
  pv_count: { header: '#PV', width: 3, right: true, value: () => '1' },
  lv_count: { header: '#LV', width: 3, right: true, value: (r) => String(r.vg.lvs.length) },
  snap_count: { header: '#SN', width: 3, right: true, value: (r) => String(r.vg.lvs.filter((l) => l.origin).length) },
  vg_attr: { header: 'Attr', width: 5, right: false, value: () => 'wz--n-' },
  vg_size: { header: 'VSize', width: 5, right: true, value: (r, f) => f(r.vg.extents * r.vg.extentSize) },
  vg_free: { header: 'VFree', width: 5, right: true, value: (r, f) => f((r.vg.extents - usedExtents(r.vg)) * r.vg.extentSize) },
  vg_extent_size: { header: 'Ext', width: 3, right: true, value: (r, f) => f(r.vg.extentSize) },
  vg_extent_count: { header: '#Ext', width: 4, right: true, value: (r) => String(r.vg.extents) },
  vg_free_count: { header: 'Free', width: 4, right: true, value: (r) => String(r.vg.extents - usedExtents(r.vg)) },
};
const VG_DEFAULT = ['vg_name', 'pv_count', 'lv_count', 'snap_count', 'vg_attr', 'vg_size', 'vg_free'];
const VG_ALIASES: Record<string, string> = {
  name: 'vg_name',
  size: 'vg_size',
  free: 'vg_free',
  attr: 'vg_attr',
  extent_size: 'vg_extent_size',
  extent_count: 'vg_extent_count',
  free_count: 'vg_free_count',
};

function selectFields<T>(io: Io, p: Parsed, table: Record<string, Field<T>>, defaults: string[], aliases: Record<string, string>, prefix: string): Field<T>[] | undefined {
  let names = [...defaults];
  for (const o of p.opts.get('options') ?? []) {
    const append = o.startsWith('+');
    const list = (append ? o.slice(1) : o).split(',').map((x) => x.trim()).filter(Boolean);
    names = append ? [...names, ...list] : list;
  }
  const fields: Field<T>[] = [];
  for (const n of names) {
    const key = table[n] ? n : aliases[n] ?? (table[`${prefix}${n}`] ? `${prefix}${n}` : undefined);
    const f = key ? table[key] : undefined;
    if (!f) {
      io.eprint(`  Unrecognised field: ${n}`);
      return undefined;
    }
    fields.push(f);
  }
  return fields;
}

function printReport<T>(io: Io, p: Parsed, fields: Field<T>[], rows: T[]): void {
  const units = last(p, 'units') ?? 'h';
  const nosuffix = p.opts.has('nosuffix');
  const fmt = (b: number) => formatSize(b, units, nosuffix);
  const cells = rows.map((r) => fields.map((f) => f.value(r, fmt)));
  if (cells.length === 0) return;
  const headings = !p.opts.has('noheadings');
  const sep = last(p, 'separator');
  if (sep !== undefined && !p.opts.has('aligned')) {
    if (headings) io.print(`  ${fields.map((f) => f.header).join(sep)}`);
    for (const row of cells) io.print(`  ${row.join(sep)}`);
    return;
  }
  const gap = sep ?? ' ';
  const widths = fields.map((f, i) => Math.max(f.width, f.header.length, ...cells.map((c) => (c[i] as string).length)));
  if (headings) io.print(`  ${fields.map((f, i) => padEnd(f.header, widths[i] as number)).join(gap)}`);
  for (const row of cells)
    io.print(`  ${row.map((c, i) => ((fields[i] as Field<T>).right ? padStart(c, widths[i] as number) : padEnd(c, widths[i] as number))).join(gap)}`);
}

function checkUnits(io: Io, p: Parsed): boolean {
  const u = last(p, 'units');
  if (u === undefined || /^[hHbBsSkKmMgGtTpPeE]$/.test(u)) return true;
  io.eprint(`  Invalid argument for --units: ${u}`);
  io.eprint('  Error during parsing of command line.');
  return false;
}

function lvs(io: Io, dir: string, args: string[]): number {
  const p = parseOpts('lvs', args, io);
  if (typeof p === 'number') return p;
  if (!checkUnits(io, p)) return EINVALID_CMD_LINE;
  const fields = selectFields(io, p, LV_FIELDS, LV_DEFAULT, LV_ALIASES, 'lv_');
  if (!fields) return ECMD_FAILED;
  const st = readState(dir);
  let rc = 0;
  const rows: LvRow[] = [];
  const add = (vg: Vg, lv: Lv) => {
    if (!rows.some((r) => r.lv === lv)) rows.push({ st, dir, vg, lv });
  };
  if (p.pos.length === 0) {
    for (const vg of st.vgs) for (const lv of vg.lvs) add(vg, lv);
  }
  for (const arg of p.pos) {
    const [vgName, lvName] = splitLvArg(arg);
    const vg = st.vgs.find((v) => v.name === vgName);
    if (!vg) {
      rc = vgNotFound(io, vgName);
      continue;
    }
    if (lvName === undefined) {
      for (const lv of vg.lvs) add(vg, lv);
      continue;
    }
    const found = findLv(st, vgName, lvName);
    if (!found) {
      io.eprint(`  Failed to find logical volume "${vgName}/${lvName}"`);
      rc = ECMD_FAILED;
      continue;
    }
    add(found.vg, found.lv);
  }
  rows.sort((a, b) => (a.vg.name === b.vg.name ? (a.lv.name < b.lv.name ? -1 : 1) : a.vg.name < b.vg.name ? -1 : 1));
  printReport(io, p, fields, rows);
  return rc;
}

function vgs(io: Io, dir: string, args: string[]): number {
  const p = parseOpts('vgs', args, io);
  if (typeof p === 'number') return p;
  if (!checkUnits(io, p)) return EINVALID_CMD_LINE;
  const fields = selectFields(io, p, VG_FIELDS, VG_DEFAULT, VG_ALIASES, 'vg_');
  if (!fields) return ECMD_FAILED;
  const st = readState(dir);
  let rc = 0;
  const rows: VgRow[] = [];
  const wanted = p.pos.length ? p.pos.map((a) => splitLvArg(a)[0]) : st.vgs.map((v) => v.name);
  for (const name of wanted) {
    const vg = st.vgs.find((v) => v.name === name);
    if (!vg) {
      rc = vgNotFound(io, name);
      continue;
    }
    if (!rows.some((r) => r.vg === vg)) rows.push({ vg });
  }
  rows.sort((a, b) => (a.vg.name < b.vg.name ? -1 : 1));
  printReport(io, p, fields, rows);
  return rc;
}

// ---------------------------------------------------------------- management + dispatch

function lvmManage(io: Io, dir: string, args: string[]): number {
  const [verb, ...rest] = args;
  switch (verb) {
    case 'vgcreate': {
      const [name, sizeText, extentText] = rest;
      const size = sizeText !== undefined && /^\d+$/.test(sizeText) ? Number(sizeText) : Number.NaN;
      const extentSize = extentText === undefined ? DEFAULT_EXTENT : /^\d+$/.test(extentText) ? Number(extentText) : Number.NaN;
      if (!name || !validVgName(name) || !(size > 0) || !(extentSize >= 1024) || (extentSize & (extentSize - 1)) !== 0 || rest.length > 3) {
        io.eprint('usage: hostsim lvm vgcreate <vg> <sizeBytes> [<extentSizeBytes, a power of 2>]');
        return 2;
      }
      const extents = Math.floor(size / extentSize);
      if (extents < 1) {
        io.eprint(`hostsim: ${size} bytes is less than one extent`);
        return 2;
      }
      return transact(dir, (st) => {
        if (st.vgs.some((v) => v.name === name)) {
          io.eprint(`  A volume group called ${name} already exists.`);
          return ECMD_FAILED;
        }
        st.vgs.push({ name, extentSize, extents, lvs: [] });
        io.print(`  Volume group "${name}" successfully created`);
        return 0;
      });
    }
    case 'vgremove': {
      const [name] = rest;
      if (!name || rest.length !== 1) {
        io.eprint('usage: hostsim lvm vgremove <vg>');
        return 2;
      }
      return transact(dir, (st) => {
        const i = st.vgs.findIndex((v) => v.name === name);
        if (i < 0) return vgNotFound(io, name);
        if ((st.vgs[i] as Vg).lvs.length) {
          io.eprint(`hostsim: volume group ${name} still has logical volumes`);
          return ECMD_FAILED;
        }
        st.vgs.splice(i, 1);
        io.print(`  Volume group "${name}" successfully removed`);
        return 0;
      });
    }
    case 'path': {
      const [arg] = rest;
      if (!arg || rest.length !== 1) {
        io.eprint('usage: hostsim lvm path <vg>/<lv>');
        return 2;
      }
      const [vg, lv] = splitLvArg(arg);
      const found = lv ? findLv(readState(dir), vg, lv) : undefined;
      if (!found) {
        io.eprint(`hostsim: no logical volume ${arg}`);
        return 1;
      }
      io.print(join(resolve(dir), found.lv.backing));
      return 0;
    }
    default:
      io.eprint('usage: hostsim lvm vgcreate|vgremove|path ... (or lvm lvcreate|lvremove|lvs|vgs ...)');
      return 2;
  }
}

export const LVM_TOOLS: Record<string, (io: Io, dir: string, args: string[]) => number> = { lvcreate, lvextend, lvremove, lvrename, lvs, vgs };

/** `lvm <tool> ...` runs the LVM tool; `lvm vgcreate|vgremove|path` are management verbs. */
export function lvmMain(io: Io, dir: string, args: string[]): number {
  const tool = args[0] !== undefined ? LVM_TOOLS[args[0]] : undefined;
  if (tool) return tool(io, dir, args.slice(1));
  return lvmManage(io, dir, args);
}

/** Fault-injection verbs: lvcreate.create / lvcreate.snapshot / lvextend.extend / lvremove.remove / lvrename.rename / lvs.list / vgs.list. */
export function lvmVerb(tool: string, args: string[]): string {
  switch (tool) {
    case 'lvcreate':
      return args.some((a) => a === '-s' || a === '--snapshot' || /^-[a-zA-Z]*s/.test(a)) ? 'snapshot' : 'create';
    case 'lvremove':
      return 'remove';
    case 'lvrename':
      return 'rename';
    case 'lvextend':
      return 'extend';
    default:
      return 'list';
  }
}
