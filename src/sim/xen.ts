/**
 * Xen toolstacks: `xm` (xend, Xen ≤ 4.4) and `xl` (libxl).
 *
 *   xm block-attach <Domain> <BackDev> <FrontDev> <Mode> [BackDomain]
 *   xm block-detach <Domain> <DevId> [-f|--force]
 *   xm block-list <Domain> [-l|--long]
 *   xm list [Domain ...]
 *   xl block-attach <Domain> <disk-spec-component(s)>...
 *   xl block-detach [-f] <Domain> <vdev>
 *   xl block-list <Domain>...
 *   xl list [Domain ...]
 *
 * Messages and exit codes follow xm's main.py and xend's DevController (errors are
 * "Error: ..." on stderr, the subcommand's usage on stdout, exit 1), the hotplug
 * `block` script's sharing check, and xl's xl_block.c / xl_utils.c / libxl.
 */
import { resolve } from 'node:path';
import { resolveDevice } from './devices.js';
import { padEnd, padStart, type Io } from './io.js';
import { readState, transact, type Disk, type SimState, type Vm } from './state.js';
import { findDomain, freeLoop, xenConflict, type Holder } from './vm.js';

// ---------------------------------------------------------------- device numbers

const HD_MAJORS = [3, 22, 33, 34, 56, 57, 88, 89, 90, 91];

function letters(s: string): number {
  let n = 0;
  for (const c of s) n = n * 26 + (c.charCodeAt(0) - 96);
  return n - 1;
}

/** Xen's virtual device number for a guest device name (docs/misc/vbd-interface.txt). */
export function vdevToDevid(name: string): number | undefined {
  const v = name.replace(/^\/dev\//, '').replace(/:(disk|cdrom)$/, '');
  if (/^\d+$/.test(v)) return Number(v);
  let m = /^xvd([a-z]+)(\d*)$/.exec(v);
  if (m?.[1] !== undefined) {
    const disk = letters(m[1]);
    const part = m[2] ? Number(m[2]) : 0;
    if (disk < 16 && part < 16) return (202 << 8) | (disk << 4) | part;
    if (disk < 1 << 20 && part < 256) return (1 << 28) | (disk << 8) | part;
    return undefined;
  }
  m = /^hd([a-t])(\d*)$/.exec(v);
  if (m?.[1] !== undefined) {
    const disk = letters(m[1]);
    const part = m[2] ? Number(m[2]) : 0;
    if (part >= 64) return undefined;
    return ((HD_MAJORS[disk >> 1] ?? 0) << 8) | ((disk & 1) << 6) | part;
  }
  m = /^sd([a-z]+)(\d*)$/.exec(v);
  if (m?.[1] !== undefined) {
    const disk = letters(m[1]);
    const part = m[2] ? Number(m[2]) : 0;
    if (disk >= 16 || part >= 16) return undefined;
    return (8 << 8) | (disk << 4) | part;
  }
  return undefined;
}

function backendPath(vm: Vm, devid: number): string {
  return `/local/domain/0/backend/vbd/${vm.domid}/${devid}`;
}

function xenDisks(vm: Vm): Disk[] {
  return vm.disks.filter((d) => d.via !== 'qm');
}

/** Finds an attached disk by guest name (`xvdb`, `/dev/xvdb`) or device number. */
function findDisk(vm: Vm, dev: string): Disk | undefined {
  const name = dev.replace(/^\/dev\//, '');
  const devid = vdevToDevid(name);
  return xenDisks(vm).find((d) => d.dev === name || (devid !== undefined && d.devid === devid));
}

// ---------------------------------------------------------------- shared attach logic

interface XenRequest {
  vm: Vm;
  vdev: string;
  devid: number;
  kind: 'file' | 'phy';
  path: string;
  mode: 'r' | 'w';
  forced: boolean;
  via: 'xm' | 'xl';
}

type AttachOutcome =
  | { ok: true }
  | { ok: false; why: 'exists' }
  | { ok: false; why: 'missing'; text: string }
  | { ok: false; why: 'busy'; text: string };

function busyText(req: XenRequest, shownPath: string, holder: Holder): string {
  const m1 = req.mode === 'w' ? '' : 'read-write ';
  const m2 = req.mode === 'w' ? '' : 'read-only ';
  if (req.kind === 'file' && holder.disk.loop !== undefined) {
    return (
      `File ${shownPath} is loopback-mounted through /dev/loop${holder.disk.loop},\n` +
      `which is mounted ${m1}in a guest domain,\nand so cannot be mounted ${m2}now.`
    );
  }
  return `Device ${shownPath} is mounted ${m1}in a guest domain,\nand so cannot be mounted ${m2}now.`;
}

/** The device checks xend/libxl and the hotplug `block` script make, in their order. */
function attach(st: SimState, dir: string, req: XenRequest): AttachOutcome {
  if (xenDisks(req.vm).some((d) => d.devid === req.devid)) return { ok: false, why: 'exists' };
  const res = resolveDevice(st, dir, req.path);
  if (req.kind === 'file') {
    if (!res.exists || !res.regularFile) return { ok: false, why: 'missing', text: `${resolve(req.path)} does not exist.` };
  } else if (!res.exists) {
    return { ok: false, why: 'missing', text: `${req.path} does not exist.` };
  }
  if (!req.forced) {
    const holder = xenConflict(st, res.backing, req.vm, req.mode);
    if (holder) {
      const shown = req.kind === 'file' ? res.backing : req.path;
      return { ok: false, why: 'busy', text: busyText(req, shown, holder) };
    }
  }
  req.vm.disks.push({
    dev: req.vdev.replace(/^\/dev\//, '').replace(/:(disk|cdrom)$/, ''),
    devid: req.devid,
    target: req.path,
    backing: res.backing,
    mode: req.mode,
    kind: req.kind,
    via: req.via,
    ...(req.kind === 'file' ? { loop: freeLoop(st) } : {}),
    ...(req.forced ? { forced: true } : {}),
  });
  return { ok: true };
}

function ringRef(i: number): number {
  return 8 + i;
}

function eventChannel(i: number): number {
  return 9 + i;
}

// ---------------------------------------------------------------- xm

const XM_HELP: Record<string, [string, string, string?]> = {
  'block-attach': ['<Domain> <BackDev> <FrontDev> <Mode> [BackDomain]', 'Create a new virtual block device.'],
  'block-detach': ['<Domain> <DevId> [-f|--force]', "Destroy a domain's virtual block device."],
  'block-list': ['<Domain> [--long]', 'List virtual block devices for a domain.'],
  list: [
    '[options] [Domain, ...]',
    'List information about all/some domains.',
    '  -l, --long                     Output all VM details in SXP               \n' +
      '  --label                        Include security labels                    \n' +
      '  --state=<state>                Select only VMs with the specified state   \n\n',
  ],
};

function xmUsage(io: Io, cmd: string): void {
  const h = XM_HELP[cmd];
  if (!h) return;
  io.print(`Usage: xm ${cmd} ${h[0]}\n\n${h[1]}`);
  if (h[2]) io.write(h[2]);
}

function xmShortHelp(io: Io): void {
  io.print('Usage: xm <subcommand> [args]\n\nControl, list, and manipulate Xen guest instances.\n');
  io.print("For a complete list of subcommands run 'xm help'.");
}

/** xm's arg_check: "--" does not count. */
function xmArgCheck(io: Io, args: string[], name: string, lo: number, hi: number): boolean {
  const n = args.filter((a) => a !== '--').length;
  if (n >= lo && n <= hi) return true;
  io.eprint(`Error: 'xm ${name}' requires between ${lo} and ${hi} arguments.\n\n`);
  xmUsage(io, name);
  return false;
}

/** A VmError from xend: "Error: <msg>" on stderr, then the usage (exit 1). */
function xmVmError(io: Io, cmd: string, msg: string): number {
  io.eprint(`Error: ${msg}`);
  xmUsage(io, cmd);
  return 1;
}

function xmNoDomain(io: Io, dom: string): number {
  io.eprint(`Error: Domain '${dom}' does not exist.`);
  return 1;
}

function xmBlockAttach(io: Io, dir: string, args: string[]): number {
  if (!xmArgCheck(io, args, 'block-attach', 4, 5)) return 1;
  const [dom, uname, vdev, modeArg, backDom] = args.filter((a) => a !== '--') as [string, string, string, string, string?];
  return transact(dir, (st) => {
    const vm = findDomain(st, dom);
    if (!vm) return xmNoDomain(io, dom);
    if (backDom !== undefined && backDom !== '0' && backDom !== 'Domain-0')
      return xmVmError(io, 'block-attach', `Cannot configure device for unknown backend ${backDom}`);
    const devid = vdevToDevid(vdev);
    if (devid === undefined) return xmVmError(io, 'block-attach', `Unable to find number for device (${vdev})`);
    const colon = uname.indexOf(':');
    const type = colon < 0 ? '' : uname.slice(0, colon);
    let path = colon < 0 ? uname : uname.slice(colon + 1);
    let kind: 'file' | 'phy';
    if (type === 'file') kind = 'file';
    else if (type === 'phy') {
      kind = 'phy';
      if (!path.startsWith('/')) path = `/dev/${path}`;
    } else if ((type === 'tap' || type === 'tap2') && /^(aio|sync|vmdk|qcow|qcow2|vhd|ram):/.test(path)) {
      kind = 'file';
      path = path.slice(path.indexOf(':') + 1);
    } else {
      // No hotplug script for this type: xend times out waiting for the backend.
      if (xenDisks(vm).some((d) => d.devid === devid))
        return xmVmError(io, 'block-attach', `Device ${vdev} (${devid}, vbd) is already connected.`);
      return xmVmError(io, 'block-attach', `Device ${devid} (vbd) could not be connected. Hotplug scripts not working.`);
    }
    const mode = modeArg.includes('w') ? 'w' : 'r';
    const forced = modeArg.includes('w') && modeArg.includes('!');
    const out = attach(st, dir, { vm, vdev, devid, kind, path, mode, forced, via: 'xm' });
    if (out.ok) return 0;
    switch (out.why) {
      case 'exists':
        return xmVmError(io, 'block-attach', `Device ${vdev} (${devid}, vbd) is already connected.`);
      case 'missing':
        return xmVmError(io, 'block-attach', `Device ${devid} (vbd) could not be connected. ${out.text}`);
      case 'busy':
        return xmVmError(io, 'block-attach', `Device ${devid} (vbd) could not be connected.\n${out.text}`);
    }
  });
}

function xmBlockDetach(io: Io, dir: string, args: string[]): number {
  if (!xmArgCheck(io, args, 'block-detach', 2, 3)) return 1;
  const [dom, dev, force] = args.filter((a) => a !== '--') as [string, string, string?];
  if (force !== undefined && force !== '-f' && force !== '--force') io.print(`Ignoring option ${force}`);
  return transact(dir, (st) => {
    const vm = findDomain(st, dom);
    if (!vm) return xmNoDomain(io, dom);
    const disk = findDisk(vm, dev);
    if (!disk) return xmVmError(io, 'block-detach', `Device ${vdevToDevid(dev) ?? dev} not connected`);
    vm.disks.splice(vm.disks.indexOf(disk), 1);
    return 0;
  });
}

function xmBlockList(io: Io, dir: string, args: string[]): number {
  const long = args.some((a) => a === '-l' || a === '--long');
  const params = args.filter((a) => a !== '-l' && a !== '--long' && a !== '--');
  const bad = params.find((a) => a.startsWith('-'));
  if (bad) {
    io.eprint(`Error: option ${bad.replace(/^-+/, '')} not recognized`);
    return 1;
  }
  if (params.length === 0) {
    io.print('No domain parameter given');
    xmUsage(io, 'block-list');
    return 1;
  }
  if (params.length > 1) {
    io.print('No multiple domain parameters allowed');
    xmUsage(io, 'block-list');
    return 1;
  }
  const dom = params[0] as string;
  const st = readState(dir);
  const vm = findDomain(st, dom);
  if (!vm) return xmNoDomain(io, dom);
  xenDisks(vm).forEach((d, i) => {
    if (long) {
      io.print(
        `(${d.devid}\n    ((backend-id 0)\n        (virtual-device ${d.devid})\n        (device-type disk)\n` +
          `        (state 4)\n        (backend ${backendPath(vm, d.devid)})\n        (ring-ref ${ringRef(i)})\n` +
          `        (event-channel ${eventChannel(i)})\n        (protocol x86_64-abi)\n    )\n)`,
      );
      return;
    }
    if (i === 0) io.print('Vdev  BE handle state evt-ch ring-ref BE-path');
    io.print(
      `${padEnd(d.devid, 3)}    ${padEnd(0, 3)}  ${padEnd(d.devid, 3)}   ${padEnd(4, 3)}    ` +
        `${padEnd(eventChannel(i), 3)}    ${padEnd(ringRef(i), 5)} ${padEnd(backendPath(vm, d.devid), 30)}  `,
    );
  });
  return 0;
}

/**
 * `xm list --long`: each domain's configuration as xend's SXP, with one
 * `(device (vbd ...))` per disk: the only xm listing that names what backs a
 * disk (`block-list --long` shows the frontend's xenstore nodes only).
 */
function xmDomainSxp(vm: Vm | undefined): string {
  const [name, domid, mem, state] = vm ? [vm.name, vm.domid, 512, '-b----'] : ['Domain-0', 0, 1024, 'r-----'];
  const lines = ['(domain', `    (domid ${domid})`, `    (name ${name})`, `    (memory ${mem})`, `    (maxmem ${mem})`, `    (vcpus 1)`, `    (state ${state})`];
  for (const d of vm ? xenDisks(vm) : []) {
    const uname = `${d.kind === 'file' ? 'file' : 'phy'}:${d.target}`;
    lines.push(
      '    (device',
      '        (vbd',
      `            (backend 0)`,
      `            (dev ${d.dev}:disk)`,
      `            (uname ${uname})`,
      `            (mode ${d.mode === 'w' ? (d.forced ? 'w!' : 'w') : 'r'})`,
      '        )',
      '    )',
    );
  }
  lines.push(')');
  return lines.join('\n');
}

function xmList(io: Io, dir: string, args: string[]): number {
  const params = args.filter((a) => !a.startsWith('-'));
  const st = readState(dir);
  if (args.some((a) => a === '-l' || a === '--long')) {
    const picked: (Vm | undefined)[] = [];
    if (params.length === 0) picked.push(undefined, ...[...st.vms].sort((a, b) => a.domid - b.domid));
    for (const p of params) {
      if (p === 'Domain-0' || p === '0') {
        picked.push(undefined);
        continue;
      }
      const vm = findDomain(st, p);
      if (!vm) return xmNoDomain(io, p);
      picked.push(vm);
    }
    for (const vm of picked) io.print(xmDomainSxp(vm));
    return 0;
  }
  const rows: [string, number, number, number, string, number][] = [];
  if (params.length === 0) {
    rows.push(['Domain-0', 0, 1024, 2, 'r-----', 120.3]);
    for (const vm of [...st.vms].sort((a, b) => a.domid - b.domid)) rows.push([vm.name, vm.domid, 512, 1, '-b----', 1.2]);
  } else {
    for (const p of params) {
      if (p === 'Domain-0' || p === '0') {
        rows.push(['Domain-0', 0, 1024, 2, 'r-----', 120.3]);
        continue;
      }
      const vm = findDomain(st, p);
      if (!vm) return xmNoDomain(io, p);
      rows.push([vm.name, vm.domid, 512, 1, '-b----', 1.2]);
    }
  }
  io.print(`${padEnd('Name', 40)} ${padStart('ID', 3)} ${padStart('Mem', 5)} ${padStart('VCPUs', 5)} ${padStart('State', 10)} ${padStart('Time(s)', 9)}`);
  for (const [name, id, mem, vcpus, state, time] of rows)
    io.print(`${padEnd(name, 40)} ${padStart(id, 3)} ${padStart(mem, 5)} ${padStart(vcpus, 5)} ${padStart(state, 10)} ${padStart(time.toFixed(1), 8)}`);
  return 0;
}

export function xmMain(io: Io, dir: string, args: string[]): number {
  const [cmd, ...rest] = args;
  if (!cmd) {
    xmShortHelp(io);
    return 1;
  }
  if ((cmd === 'help' || cmd === '--help' || cmd === '-h') && rest.length === 0) {
    xmShortHelp(io);
    return 0;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    xmUsage(io, cmd);
    return 1;
  }
  switch (cmd) {
    case 'block-attach':
    case 'vbd-create':
      return xmBlockAttach(io, dir, rest);
    case 'block-detach':
    case 'vbd-destroy':
      return xmBlockDetach(io, dir, rest);
    case 'block-list':
    case 'vbd-list':
      return xmBlockList(io, dir, rest);
    case 'list':
      return xmList(io, dir, rest);
    default:
      io.eprint(`Error: Subcommand ${cmd} not found!`);
      xmShortHelp(io);
      return 1;
  }
}

// ---------------------------------------------------------------- xl

const XL_HELP: Record<string, [string, string, string?]> = {
  'block-attach': ['<Domain> <disk-spec-component(s)>...', 'Create a new virtual block device'],
  'block-detach': ['[options] <Domain> <DevId>', "Destroy a domain's virtual block device", '-f, --force   Forcibly remove the device even if the backend fails.\n'],
  'block-list': ['<Domain(s)>', 'List virtual block devices for a domain'],
  list: ['[options] [Domain]', 'List information about all/some domains'],
};

function xlHelp(io: Io, cmd: string): void {
  const h = XL_HELP[cmd];
  if (!h) return;
  io.print(`Usage: xl [-v] ${cmd} ${h[0]}\n\n${h[1]}.\n`);
  if (h[2]) io.print(`Options:\n\n${h[2]}`);
}

/** xl's def_getopt: unknown option → exit 2; too few arguments → message + help, exit 2. */
function xlGetopt(io: Io, cmd: string, args: string[], flags: string[], reqargs: number): { opts: Set<string>; params: string[] } | number {
  const opts = new Set<string>();
  const params: string[] = [];
  let onlyParams = false;
  for (const a of args) {
    if (onlyParams || !a.startsWith('-') || a === '-') {
      params.push(a);
      continue;
    }
    if (a === '--') {
      onlyParams = true;
      continue;
    }
    if (a === '-h' || a === '--help') {
      xlHelp(io, cmd);
      return 0;
    }
    const name = a.replace(/^-+/, '');
    if (!flags.includes(name)) {
      io.eprint(`option \`${name.slice(0, 1)}' not supported.`);
      return 2;
    }
    opts.add(name);
  }
  if (params.length < reqargs) {
    io.eprint(`'xl ${cmd}' requires at least ${reqargs} argument${reqargs > 1 ? 's' : ''}.\n\n`);
    xlHelp(io, cmd);
    return 2;
  }
  return { opts, params };
}

/** libxl's log line format: `libxl: error: <file>:<line>:<function>: <message>`. */
function libxlError(io: Io, where: string, msg: string): void {
  io.eprint(`libxl: error: ${where}: ${msg}`);
}

const XL_FORMATS = ['raw', 'qcow', 'qcow2', 'vhd', 'qed'];
const XL_IGNORED_PREFIXES = ['tapdisk', 'tap2', 'tap', 'aio', 'ioemu', 'file', 'phy'];
const XL_SCRIPT_PREFIXES = ['iscsi', 'nbd', 'enbd', 'drbd'];
const XL_FLAGS = ['cdrom', 'direct-io-safe', 'discard', 'no-discard', 'colo'];
const XL_KEYS = ['format', 'vdev', 'access', 'devtype', 'backend', 'backendtype', 'script', 'specification', 'transport'];

export interface XlDisk {
  target: string | undefined;
  format: string;
  vdev: string;
  access: 'r' | 'w';
  devtype?: string;
  script?: string;
}

/** Parses an xl disk spec (docs/misc/xl-disk-configuration.txt), or returns the parse error. */
export function parseXlDiskSpec(spec: string): XlDisk | { error: string } {
  const err = (message: string, erroneous?: string) => ({
    error: `command line: config parsing error in disk specification: ${message}${erroneous !== undefined ? `: \`${erroneous}'` : ''} in \`${spec}'`,
  });
  const named: Record<string, string> = {};
  const positional: string[] = [];
  let target: string | undefined;
  let rest = spec;
  while (rest.length > 0) {
    rest = rest.replace(/^\s+/, '');
    if (rest.startsWith('target=')) {
      target = rest.slice('target='.length);
      break;
    }
    const comma = rest.indexOf(',');
    const tok = comma < 0 ? rest : rest.slice(0, comma);
    rest = comma < 0 ? '' : rest.slice(comma + 1);
    const eq = tok.indexOf('=');
    if (eq >= 0) {
      const key = tok.slice(0, eq);
      if (!XL_KEYS.includes(key)) return err('unknown keyword', tok);
      if (named[key] !== undefined) return err(`${key} specified more than once`);
      named[key] = tok.slice(eq + 1);
    } else if (XL_FLAGS.includes(tok)) {
      if (tok === 'cdrom') named.devtype = 'cdrom';
    } else {
      positional.push(tok);
    }
  }
  let format = named.format;
  let vdev = named.vdev;
  let access = named.access;
  let script = named.script;
  let slot = 0; // 0 target, 1 format, 2 vdev, 3 access
  for (const raw of positional) {
    let v = raw;
    if (slot === 0) {
      for (;;) {
        const m = /^([a-z0-9]+):/.exec(v);
        if (!m?.[1]) break;
        if (XL_IGNORED_PREFIXES.includes(m[1])) v = v.slice(m[0].length);
        else if (XL_FORMATS.includes(m[1])) {
          format ??= m[1];
          v = v.slice(m[0].length);
        } else if (XL_SCRIPT_PREFIXES.includes(m[1])) {
          script ??= `block-${m[1]}`;
          v = v.slice(m[0].length);
        } else break;
      }
      if (target === undefined && v !== '') target = v;
      slot = 1;
      continue;
    }
    if (slot === 1) {
      if (v === '' || XL_FORMATS.includes(v)) {
        if (v) format ??= v;
        slot = 2;
        continue;
      }
      if (vdevToDevid(v) === undefined) return err('unknown value for format', v);
      slot = 2; // deprecated "<target>,<vdev>,<access>"
    }
    if (slot === 2) {
      if (v) vdev ??= v;
      slot = 3;
      continue;
    }
    if (slot === 3) {
      if (v) access ??= v;
      slot = 4;
      continue;
    }
    return err('too many positional parameters', v);
  }
  if (format !== undefined && format !== '' && !XL_FORMATS.includes(format)) return err('unknown value for format', format);
  let acc: 'r' | 'w';
  if (access === undefined || access === '') acc = named.devtype === 'cdrom' ? 'r' : 'w';
  else if (access === 'r' || access === 'ro') acc = 'r';
  else if (access === 'w' || access === 'rw') acc = 'w';
  else return err('unknown value for access', access);
  if (!vdev) return err('no vdev specified');
  if (target !== undefined && target !== '' && !target.startsWith('/')) target = `/dev/${target}`;
  return {
    target: target || undefined,
    format: format || 'raw',
    vdev: vdev.replace(/:(disk|cdrom)$/, ''),
    access: acc,
    ...(named.devtype ? { devtype: named.devtype } : {}),
    ...(script ? { script } : {}),
  };
}

function xlBlockAttach(io: Io, dir: string, args: string[]): number {
  const g = xlGetopt(io, 'block-attach', args, [], 2);
  if (typeof g === 'number') return g;
  const [dom, ...specs] = g.params as [string, ...string[]];
  return transact(dir, (st) => {
    const vm = findDomain(st, dom);
    if (!vm) {
      if (/^\d+$/.test(dom)) {
        libxlError(io, 'libxl_dom.c:50:libxl__domain_type', `unable to get domain type for domid=${dom}`);
        io.eprint('libxl_device_disk_add failed.');
        return 1;
      }
      io.eprint(`${dom} is an invalid domain identifier`);
      return 1;
    }
    const spec = specs.join(',');
    const disk = parseXlDiskSpec(spec);
    if ('error' in disk) {
      io.eprint(disk.error);
      return 1;
    }
    const devid = vdevToDevid(disk.vdev);
    if (devid === undefined) {
      libxlError(io, 'libxl_device.c:1029:libxl__device_disk_add', `Domain ${vm.domid}:Invalid or unsupported virtual disk identifier ${disk.vdev}`);
      io.eprint('libxl_device_disk_add failed.');
      return 1;
    }
    const path = disk.target ?? '';
    const res = resolveDevice(st, dir, path);
    if (!path || !res.exists) {
      libxlError(
        io,
        'libxl_device.c:392:libxl__device_disk_set_backend',
        `Disk vdev=${disk.vdev} failed to stat: ${path}: No such file or directory`,
      );
      io.eprint('libxl_device_disk_add failed.');
      return 1;
    }
    const kind = res.regularFile ? 'file' : 'phy';
    const out = attach(st, dir, { vm, vdev: disk.vdev, devid, kind, path, mode: disk.access, forced: false, via: 'xl' });
    if (out.ok) return 0;
    if (out.why === 'exists') {
      libxlError(io, 'libxl_disk.c:411:device_disk_add', `Domain ${vm.domid}:device already exists in xenstore`);
      libxlError(io, 'libxl_device.c:1279:device_addrm_aocomplete', 'unable to add device');
    } else {
      const text = out.text;
      libxlError(io, 'libxl_exec.c:117:libxl_report_child_exitstatus', `/etc/xen/scripts/block add [${process.pid}] exited with error status 1`);
      libxlError(io, 'libxl_device.c:1259:device_hotplug_child_death_cb', `script: ${text}`);
      libxlError(
        io,
        'libxl_device.c:1279:device_addrm_aocomplete',
        `Domain ${vm.domid}:unable to add device with path ${backendPath(vm, devid)}`,
      );
    }
    io.eprint('libxl_device_disk_add failed.');
    return 1;
  });
}

function xlBlockDetach(io: Io, dir: string, args: string[]): number {
  const g = xlGetopt(io, 'block-detach', args, ['f', 'force'], 2);
  if (typeof g === 'number') return g;
  const [dom, dev] = g.params as [string, string];
  return transact(dir, (st) => {
    const vm = findDomain(st, dom);
    if (!vm) {
      io.eprint(`${dom} is an invalid domain identifier (rc=-6)`);
      return 1;
    }
    const disk = findDisk(vm, dev);
    if (!disk) {
      io.eprint(`Error: Device ${dev} not connected.`);
      return 1;
    }
    vm.disks.splice(vm.disks.indexOf(disk), 1);
    return 0;
  });
}

function xlBlockList(io: Io, dir: string, args: string[]): number {
  const g = xlGetopt(io, 'block-list', args, [], 1);
  if (typeof g === 'number') return g;
  const st = readState(dir);
  io.print(
    `${padEnd('Vdev', 5)} ${padEnd('BE', 3)} ${padEnd('handle', 6)} ${padEnd('state', 5)} ${padEnd('evt-ch', 6)} ${padEnd('ring-ref', 8)} ${padEnd('BE-path', 30)}`,
  );
  for (const dom of g.params) {
    const vm = findDomain(st, dom);
    if (!vm) {
      io.eprint(`${dom} is an invalid domain identifier`);
      continue;
    }
    xenDisks(vm).forEach((d, i) =>
      io.print(
        `${padEnd(d.devid, 5)} ${padEnd(0, 3)} ${padEnd(vm.domid, 6)} ${padEnd(4, 5)} ${padEnd(eventChannel(i), 6)} ${padEnd(ringRef(i), 8)} ${padEnd(backendPath(vm, d.devid), 30)}`,
      ),
    );
  }
  return 0;
}

function xlList(io: Io, dir: string, args: string[]): number {
  const params = args.filter((a) => !a.startsWith('-'));
  const st = readState(dir);
  const rows: [string, number, number, number, string, number][] = [];
  const dom0: [string, number, number, number, string, number] = ['Domain-0', 0, 1024, 2, 'r-----', 120.3];
  if (params.length === 0) {
    rows.push(dom0);
    for (const vm of [...st.vms].sort((a, b) => a.domid - b.domid)) rows.push([vm.name, vm.domid, 512, 1, '-b----', 1.2]);
  } else {
    for (const p of params) {
      if (p === 'Domain-0' || p === '0') {
        rows.push(dom0);
        continue;
      }
      const vm = findDomain(st, p);
      if (!vm) {
        io.eprint(`${p} is an invalid domain identifier (rc=-6)`);
        return 1;
      }
      rows.push([vm.name, vm.domid, 512, 1, '-b----', 1.2]);
    }
  }
  io.print(`${padEnd('Name', 40)} ${padStart('ID', 5)} ${padStart('Mem', 5)} ${padStart('VCPUs', 5)} ${padStart('State', 10)} ${padStart('Time(s)', 9)}`);
  for (const [name, id, mem, vcpus, state, time] of rows)
    io.print(`${padEnd(name, 40)} ${padStart(id, 5)} ${padStart(mem, 5)} ${padStart(vcpus, 5)}     ${state}  ${padStart(time.toFixed(1), 8)}`);
  return 0;
}

export function xlMain(io: Io, dir: string, args: string[]): number {
  const [cmd, ...rest] = args;
  switch (cmd) {
    case 'block-attach':
      return xlBlockAttach(io, dir, rest);
    case 'block-detach':
      return xlBlockDetach(io, dir, rest);
    case 'block-list':
      return xlBlockList(io, dir, rest);
    case 'list':
      return xlList(io, dir, rest);
    case undefined:
      io.print('Usage xl [-vfNtT] <subcommand> [args]\n');
      return 1;
    default:
      io.eprint(`command not implemented`);
      return 1;
  }
}

/** Fault-injection verb: the subcommand. */
export function xenVerb(args: string[]): string {
  return args[0] ?? '';
}
