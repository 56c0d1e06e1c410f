/**
 * Management verbs for simulated VMs (not a real tool: used by tests and `vbs up`),
 * and the sharing rules every hypervisor family applies to disks.
 *
 *   hostsim vm create <name> [--domid N]
 *   hostsim vm destroy <name>
 *   hostsim vm list                      JSON: [{name, domid, disks:[{dev,target,mode,kind}]}]
 */
import type { Io } from './io.js';
import { readState, transact, type Disk, type SimState, type Vm } from './state.js';

/** Xen-style lookup: the name first, then a numeric domain id. */
export function findDomain(st: SimState, qualifier: string): Vm | undefined {
  const byName = st.vms.find((v) => v.name === qualifier);
  if (byName) return byName;
  if (/^\d+$/.test(qualifier)) return st.vms.find((v) => v.domid === Number(qualifier));
  return undefined;
}

export interface Holder {
  vm: Vm;
  disk: Disk;
}

/** Every attachment of the given host file, on any VM. */
export function holdersOf(st: SimState, backing: string): Holder[] {
  const out: Holder[] = [];
  for (const vm of st.vms) for (const disk of vm.disks) if (disk.backing === backing) out.push({ vm, disk });
  return out;
}

/**
 * The attachment that forbids a new one, following the Xen block script's rule:
 * read-write needs the device unused by any other domain; read-only needs it unused
 * read-write by any other domain. The same domain may reuse its own device.
 */
export function xenConflict(st: SimState, backing: string, vm: Vm, mode: 'r' | 'w'): Holder | undefined {
  return holdersOf(st, backing).find((h) => h.vm !== vm && (mode === 'w' || h.disk.mode === 'w'));
}

/**
 * QEMU's image locking: a writer needs nobody else to have the image open; a reader
 * needs no writer. Unlike Xen, the same VM opening the image twice conflicts too.
 */
export function qemuConflict(st: SimState, backing: string, mode: 'r' | 'w'): Holder | undefined {
  return holdersOf(st, backing).find((h) => mode === 'w' || h.disk.mode === 'w');
}

/** Lowest loop device number not used by a Xen `file:` disk. */
export function freeLoop(st: SimState): number {
  const used = new Set<number>();
  for (const vm of st.vms) for (const d of vm.disks) if (d.loop !== undefined) used.add(d.loop);
  let n = 0;
  while (used.has(n)) n++;
  return n;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,63}$/;

function usage(io: Io): number {
  io.eprint('usage: hostsim vm create <name> [--domid N] | vm destroy <name> | vm list');
  return 2;
}

export function vmMain(io: Io, dir: string, args: string[]): number {
  const [verb, ...rest] = args;
  switch (verb) {
    case 'create': {
      const name = rest[0];
      let domid: number | undefined;
      for (let i = 1; i < rest.length; i++) {
        const a = rest[i] ?? '';
        const v = a === '--domid' ? rest[++i] : a.startsWith('--domid=') ? a.slice(8) : undefined;
        if (v === undefined || !/^\d+$/.test(v) || Number(v) < 1) return usage(io);
        domid = Number(v);
      }
      if (!name || !NAME.test(name) || name === 'Domain-0') {
        io.eprint(`hostsim: invalid VM name '${name ?? ''}'`);
        return 2;
      }
      return transact(dir, (st) => {
        if (st.vms.some((v) => v.name === name)) {
          io.eprint(`hostsim: VM ${name} already exists`);
          return 1;
        }
        const id = domid ?? Math.max(st.nextDomid, ...st.vms.map((v) => v.domid + 1));
        if (st.vms.some((v) => v.domid === id)) {
          io.eprint(`hostsim: domain id ${id} is in use`);
          return 1;
        }
        st.vms.push({ name, domid: id, disks: [] });
        st.nextDomid = Math.max(st.nextDomid, id + 1);
        io.print(String(id));
        return 0;
      });
    }
    case 'destroy': {
      const name = rest[0];
      if (!name || rest.length !== 1) return usage(io);
      return transact(dir, (st) => {
        const i = st.vms.findIndex((v) => v.name === name);
        if (i < 0) {
          io.eprint(`hostsim: no VM ${name}`);
          return 1;
        }
        st.vms.splice(i, 1);
        return 0;
      });
    }
    case 'list': {
      if (rest.length) return usage(io);
      const st = readState(dir);
      const list = st.vms.map((v) => ({
        name: v.name,
        domid: v.domid,
        disks: v.disks.map((d) => ({ dev: d.dev, target: d.target, mode: d.mode, kind: d.kind })),
      }));
      io.print(JSON.stringify(list));
      return 0;
    }
    default:
      return usage(io);
  }
}
