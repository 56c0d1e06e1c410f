/**
 * Proxmox VE's `qm` (hot-plugging disks into a running VM):
 *
 *   qm set <vmid> --<drive> <path>[,ro=1][,<opt>=<v>...]   drive: ide0-3, sata0-5, scsi0-30, virtio0-15
 *   qm set <vmid> --delete <drive>[,<drive>...]
 *   qm set <vmid> --memory N | --cores N | --name S | --description S
 *   qm config <vmid>
 *
 * Messages follow qemu-server / pve-common: schema errors are "400 Parameter verification
 * failed." with one "<key>: <reason>" line each and the command's usage (exit 255); a VM
 * without a configuration file dies with "Configuration file 'nodes/<node>/qemu-server/
 * <vmid>.conf' does not exist" (exit 2, Perl's errno); hot-plug failures come back from
 * QEMU ("Failed to get \"write\" lock", "Is another process using the image [...]?").
 * Setting a drive slot already in use is refused (QEMU's "Duplicate ID") where Proxmox
 * itself would unplug and replace the old disk: see the simulator notes.
 */
import { statSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolveDevice } from './devices.js';
import type { Io } from './io.js';
import { readState, transact, type Disk, type SimState, type Vm } from './state.js';
import { qemuConflict } from './vm.js';

const DRIVE = /^(ide[0-3]|sata[0-5]|scsi([0-9]|[12][0-9]|30)|virtio([0-9]|1[0-5]))$/;
const SIMPLE: Record<string, RegExp> = {
  memory: /^\d+$/,
  cores: /^\d+$/,
  sockets: /^\d+$/,
  name: /^[A-Za-z0-9][A-Za-z0-9.-]*$/,
  description: /^.*$/s,
  onboot: /^[01]$/,
};
const FLAGS = ['skiplock', 'force'];
const IGNORED = ['digest', 'skiplock', 'force', 'revert'];

const DRIVE_KEYS_BASE = [
  'file', 'aio', 'backup', 'bps', 'cache', 'detect_zeroes', 'discard', 'format', 'iops', 'mbps',
  'media', 'replicate', 'rerror', 'serial', 'shared', 'size', 'snapshot', 'werror',
];
const DRIVE_KEYS: Record<string, string[]> = {
  ide: [...DRIVE_KEYS_BASE, 'model', 'ssd', 'wwn'],
  sata: [...DRIVE_KEYS_BASE, 'ssd', 'wwn'],
  scsi: [...DRIVE_KEYS_BASE, 'iothread', 'queues', 'ro', 'scsiblock', 'ssd', 'wwn'],
  virtio: [...DRIVE_KEYS_BASE, 'iothread', 'ro'],
};
const BOOLEAN = /^(0|1|on|off|yes|no|true|false)$/i;

function node(): string {
  return hostname().split('.')[0] || 'localhost';
}

function configPath(vmid: string): string {
  return `nodes/${node()}/qemu-server/${vmid}.conf`;
}

class QmError extends Error {
  constructor(
    readonly text: string,
    readonly code: number,
  ) {
    super(text);
  }
}

function paramError(errors: [string, string][], usage: string): QmError {
  const lines = errors.map(([k, v]) => `${k}: ${v}`).join('\n');
  return new QmError(`400 Parameter verification failed.\n${lines}\n\n${usage}`, 255);
}

/** PVE::JSONSchema::format_size */
function formatSize(bytes: number): string {
  const kb = Math.floor(bytes / 1024);
  if (kb * 1024 !== bytes) return String(bytes);
  const mb = Math.floor(kb / 1024);
  if (mb * 1024 !== kb) return `${kb}K`;
  const gb = Math.floor(mb / 1024);
  if (gb * 1024 !== mb) return `${mb}M`;
  const tb = Math.floor(gb / 1024);
  if (tb * 1024 !== gb) return `${gb}G`;
  return `${tb}T`;
}

interface DriveSpec {
  file: string;
  opts: Record<string, string>;
}

function parseDrive(slot: string, value: string, usage: string): DriveSpec {
  const bus = slot.replace(/\d+$/, '');
  const allowed = DRIVE_KEYS[bus] ?? DRIVE_KEYS_BASE;
  const opts: Record<string, string> = {};
  let file: string | undefined;
  const errors: [string, string][] = [];
  for (const part of value.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) {
      if (file === undefined) file = part;
      else errors.push([slot, 'invalid format - format error'], [`${slot}.file`, 'duplicate key in comma-separated list property']);
      continue;
    }
    const key = part.slice(0, eq);
    const v = part.slice(eq + 1);
    if (key === 'file') {
      file = v;
      continue;
    }
    if (!allowed.includes(key)) {
      errors.push([slot, 'invalid format - format error'], [`${slot}.${key}`, 'property is not defined in schema and the schema does not allow additional properties']);
      continue;
    }
    if (key === 'ro' && !BOOLEAN.test(v)) {
      errors.push([slot, 'invalid format - format error'], [`${slot}.ro`, `type check ('boolean') failed - got '${v}'`]);
      continue;
    }
    opts[key] = v;
  }
  if (!file) errors.push([slot, 'invalid format - format error'], [`${slot}.file`, "property is missing and it is not optional"]);
  if (errors.length) throw paramError(errors, usage);
  return { file: file as string, opts };
}

function isTrue(v: string | undefined): boolean {
  return v !== undefined && /^(1|on|yes|true)$/i.test(v);
}

interface ParsedArgs {
  vmid: string;
  options: [string, string][];
}

function parseArgs(cmd: string, args: string[], usage: string, allowOptions: boolean): ParsedArgs {
  const positional: string[] = [];
  const options: [string, string][] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (!a.startsWith('-') || a === '-') {
      positional.push(a);
      continue;
    }
    const body = a.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const key = eq < 0 ? body : body.slice(0, eq);
    let value: string | undefined = eq < 0 ? undefined : body.slice(eq + 1);
    if (value === undefined) {
      const next = args[i + 1];
      if (FLAGS.includes(key) && (next === undefined || next.startsWith('-'))) value = '1';
      else if (next === undefined) throw new QmError(`Option ${key} requires an argument\n400 unable to parse option\n${usage}`, 255);
      else {
        value = next;
        i++;
      }
    }
    if (!allowOptions) throw new QmError(`Unknown option: ${key}\n400 unable to parse option\n${usage}`, 255);
    options.push([key, value]);
  }
  if (positional.length === 0) throw new QmError(`400 not enough arguments\n${usage}`, 255);
  if (positional.length > 1) throw new QmError(`400 too many arguments\n${usage}`, 255);
  const vmid = positional[0] as string;
  if (!/^\d+$/.test(vmid)) throw paramError([['vmid', `type check ('integer') failed - got '${vmid}'`]], usage);
  if (Number(vmid) < 100) throw paramError([['vmid', 'value must have a minimum value of 100']], usage);
  if (Number(vmid) > 999999999) throw paramError([['vmid', 'value must have a maximum value of 999999999']], usage);
  void cmd;
  return { vmid, options };
}

function loadVm(st: SimState, vmid: string): Vm {
  const vm = st.vms.find((v) => v.name === vmid);
  if (!vm) throw new QmError(`Configuration file '${configPath(vmid)}' does not exist`, 2);
  return vm;
}

function sizeOf(backing: string): number {
  try {
    return statSync(backing).size;
  } catch {
    return 0;
  }
}

function driveLine(d: Disk): string {
  return d.options ? `${d.target},${d.options}` : d.target;
}

function qmSet(io: Io, dir: string, args: string[]): number {
  const usage = 'qm set <vmid> [OPTIONS]';
  const { vmid, options } = parseArgs('set', args, usage, true);
  const errors: [string, string][] = [];
  const deletes: string[] = [];
  const drives: [string, DriveSpec, string][] = [];
  const simple: [string, string][] = [];
  const seen = new Set<string>();
  for (const [key, value] of options) {
    if (seen.has(key)) {
      errors.push([key, 'duplicate parameter']);
      continue;
    }
    seen.add(key);
    if (IGNORED.includes(key)) continue;
    if (key === 'delete') {
      for (const d of value.split(/[,;\s]+/).filter(Boolean)) {
        if (!DRIVE.test(d) && !(d in SIMPLE)) errors.push(['delete', `invalid format - invalid configuration ID '${d}'`]);
        else deletes.push(d);
      }
      continue;
    }
    if (DRIVE.test(key)) {
      drives.push([key, parseDrive(key, value, usage), value]);
      continue;
    }
    const re = SIMPLE[key];
    if (re) {
      if (!re.test(value)) errors.push([key, `value does not match the regex pattern`]);
      else simple.push([key, value]);
      continue;
    }
    errors.push([key, 'property is not defined in schema and the schema does not allow additional properties']);
  }
  if (errors.length) throw paramError(errors, usage);
  if (options.filter(([k]) => !IGNORED.includes(k)).length === 0) throw new QmError('no options specified', 255);
  for (const [slot] of drives)
    if (deletes.includes(slot)) throw new QmError(`unable to delete '${slot}' - option is also set`, 255);

  return transact(dir, (st) => {
    const vm = loadVm(st, vmid);
    const logged = [...options]
      .filter(([k]) => !IGNORED.includes(k))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `-${k} ${v}`)
      .join(' ');
    io.print(`update VM ${vmid}: ${logged}`);

    for (const key of deletes) {
      if (key in SIMPLE) {
        if (vm.config?.[key] === undefined) io.eprint(`cannot delete '${key}' - not set in current configuration!`);
        else delete vm.config[key];
        continue;
      }
      const i = vm.disks.findIndex((d) => d.via === 'qm' && d.dev === key);
      if (i < 0) io.eprint(`cannot delete '${key}' - not set in current configuration!`);
      else vm.disks.splice(i, 1);
    }
    for (const [key, value] of simple) vm.config = { ...(vm.config ?? {}), [key]: value };

    const hotplugErrors: [string, string][] = [];
    for (const [slot, spec] of drives) {
      const file = spec.file;
      if (!file.startsWith('/')) {
        const storage = /^([a-z][a-z0-9\-_.]*[a-z0-9]):/i.exec(file);
        if (storage?.[1]) throw new QmError(`storage '${storage[1]}' does not exist`, 255);
        throw new QmError(`unable to parse volume ID '${file}'`, 255);
      }
      const res = resolveDevice(st, dir, file);
      const size = res.exists ? sizeOf(res.backing) : 0;
      if (!res.exists || size === 0) throw new QmError(`volume ${file} does not exist`, 255);
      if (vm.disks.some((d) => d.via === 'qm' && d.dev === slot)) {
        hotplugErrors.push([slot, `hotplug problem - adding drive failed: Duplicate ID 'drive-${slot}' for drive`]);
        continue;
      }
      const mode = isTrue(spec.opts.ro) ? 'r' : 'w';
      const holder = qemuConflict(st, res.backing, mode);
      if (holder) {
        const what = mode === 'w' ? 'Failed to get "write" lock' : 'Failed to get shared "write" lock';
        hotplugErrors.push([slot, `hotplug problem - adding drive failed: ${what}\nIs another process using the image [${file}]?`]);
        continue;
      }
      const opts = { ...spec.opts, size: formatSize(size) };
      const options = Object.keys(opts)
        .sort()
        .map((k) => `${k}=${opts[k as keyof typeof opts]}`)
        .join(',');
      vm.disks.push({
        dev: slot,
        devid: 0,
        target: file,
        backing: res.backing,
        mode,
        kind: res.regularFile ? 'file' : 'phy',
        via: 'qm',
        options,
      });
    }
    if (hotplugErrors.length) throw paramError(hotplugErrors, usage);
    return 0;
  });
}

function qmConfig(io: Io, dir: string, args: string[]): number {
  const usage = 'qm config <vmid> [OPTIONS]';
  const { vmid } = parseArgs('config', args.filter((a) => a !== '--current'), usage, false);
  const st = readState(dir);
  const vm = loadVm(st, vmid);
  const conf: Record<string, string> = { cores: '1', memory: '512', scsihw: 'virtio-scsi-pci', ...(vm.config ?? {}) };
  for (const d of vm.disks) if (d.via === 'qm') conf[d.dev] = driveLine(d);
  for (const k of Object.keys(conf).sort()) io.print(`${k}: ${conf[k]}`);
  return 0;
}

export function qmMain(io: Io, dir: string, args: string[]): number {
  const [cmd, ...rest] = args;
  try {
    switch (cmd) {
      case 'set':
        return qmSet(io, dir, rest);
      case 'config':
        return qmConfig(io, dir, rest);
      case undefined:
        io.eprint('ERROR: no command specified');
        return 255;
      default:
        io.eprint(`ERROR: unknown command 'qm ${cmd}'`);
        return 255;
    }
  } catch (e) {
    if (e instanceof QmError) {
      io.eprint(e.text);
      return e.code;
    }
    throw e;
  }
}

export function qmVerb(args: string[]): string {
  return args[0] ?? '';
}
