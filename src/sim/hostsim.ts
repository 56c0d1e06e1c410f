#!/usr/bin/env node
/**
 * hostsim — one multi-call program that behaves like the host tools VBS drives on
 * machines that lack them (Xen's xm/xl, Proxmox's qm, LVM, IET's ietadm, open-iscsi's
 * iscsiadm), with its state in a folder so that successive calls see each other.
 *
 *   node dist/sim/hostsim.js [--state DIR] <tool> <args...>
 *   <tool> <args...>            through a symlink or shim named after the tool
 *
 * The state folder is `--state DIR` (the first two arguments) or $VBS_SIM_STATE.
 * Tools: xm, xl, qm, lvcreate, lvextend, lvremove, lvrename, lvs, vgs, lvm, ietadm, iscsiadm, nimbus-admin, openstack.
 * Management verbs: vm, lvm (vgcreate|vgremove|path), iet, iscsi, nimbus, nova, resolve, dump, shims.
 * Fault injection (fail/ and hang/ files in the state folder): see faults.ts.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { injectedFailure, injectedFailureAfter, maybeHang } from './faults.js';
import { Io, type ToolDef } from './io.js';
import { ensureDir, LockTimeout, readState } from './state.js';

/*
 * Every simulated command is a Node process of its own (a `.sim` pattern in
 * commands.properties), so what one loads is paid at every host command: each
 * tool's module (and what it imports: better-sqlite3 for nimbus-admin, the
 * libiscsi bridge for iscsiadm) is loaded only when that tool runs.
 * docs/process-starts.md has the numbers.
 */
type Loader = () => Promise<ToolDef>;

function lvmTool(name: string): Loader {
  return async () => {
    const { LVM_TOOLS, lvmVerb } = await import('./lvm.js');
    const run = LVM_TOOLS[name];
    if (!run) throw new Error(`no LVM tool ${name}`);
    return { run, verbOf: (args) => lvmVerb(name, args) };
  };
}

export const TOOLS: Record<string, Loader> = {
  xm: async () => {
    const { xmMain, xenVerb } = await import('./xen.js');
    return { run: xmMain, verbOf: xenVerb };
  },
  xl: async () => {
    const { xlMain, xenVerb } = await import('./xen.js');
    return { run: xlMain, verbOf: xenVerb };
  },
  qm: async () => {
    const { qmMain, qmVerb } = await import('./proxmox.js');
    return { run: qmMain, verbOf: qmVerb };
  },
  lvcreate: lvmTool('lvcreate'),
  lvremove: lvmTool('lvremove'),
  lvrename: lvmTool('lvrename'),
  lvextend: lvmTool('lvextend'),
  lvs: lvmTool('lvs'),
  vgs: lvmTool('vgs'),
  ietadm: async () => {
    const { ietadmMain, ietVerb } = await import('./iet.js');
    return { run: ietadmMain, verbOf: ietVerb };
  },
  iscsiadm: async () => {
    const { iscsiadmMain, iscsiadmVerb } = await import('./iscsiadm.js');
    return { run: iscsiadmMain, verbOf: iscsiadmVerb };
  },
  // Cloud tools the instance resolver drives (src/resolver): fault verbs `list` and `show`.
  'nimbus-admin': async () => ({ run: (await import('./nimbus.js')).nimbusAdminMain, verbOf: () => 'list' }),
  openstack: async () => ({ run: (await import('./openstack.js')).openstackMain, verbOf: (args) => args[1] ?? '' }),
  // `lvm lvcreate ...` is the real multi-call LVM binary; `lvm vgcreate|path` are management verbs.
  lvm: async () => {
    const { LVM_TOOLS, lvmMain, lvmVerb } = await import('./lvm.js');
    return {
      run: lvmMain,
      verbOf: (args) => {
        const t = args[0];
        return t && LVM_TOOLS[t] ? `${t}.${lvmVerb(t, args.slice(1))}` : '';
      },
    };
  },
  vm: async () => ({ run: (await import('./vm.js')).vmMain }),
  iet: async () => ({ run: (await import('./iet.js')).ietManage }),
  iscsi: async () => ({ run: (await import('./iscsiadm.js')).iscsiManage }),
  nimbus: async () => ({ run: (await import('./nimbus.js')).nimbusManage }),
  nova: async () => ({ run: (await import('./openstack.js')).novaManage }),
  resolve: async () => {
    const { resolveDevice } = await import('./devices.js');
    return {
      run: (io, dir, args) => {
        if (args.length !== 1 || !args[0]) {
          io.eprint('usage: hostsim resolve <device path>');
          return 2;
        }
        const r = resolveDevice(readState(dir), dir, args[0]);
        if (!r.exists) {
          io.eprint(`hostsim: ${args[0]} does not exist`);
          return 1;
        }
        io.print(r.backing);
        return 0;
      },
    };
  },
  dump: async () => ({
    run: (io, dir) => {
      io.print(JSON.stringify(readState(dir), null, 2));
      return 0;
    },
  }),
  shims: async () => ({ run: writeShims }),
};

/** The host tools a shim folder provides. */
export const REAL_TOOLS = ['xm', 'xl', 'qm', 'lvcreate', 'lvextend', 'lvremove', 'lvrename', 'lvs', 'vgs', 'lvm', 'ietadm', 'iscsiadm', 'nimbus-admin', 'openstack'];

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * `hostsim --state DIR shims <bindir>`: writes one executable shim per tool into <bindir>
 * (put it first on PATH), each running this program on DIR with the tool's name.
 */
function writeShims(io: Io, dir: string, args: string[]): number {
  const [bin] = args;
  if (!bin || args.length !== 1) {
    io.eprint('usage: hostsim --state DIR shims <bindir>');
    return 2;
  }
  mkdirSync(bin, { recursive: true });
  const self = fileURLToPath(import.meta.url);
  for (const tool of REAL_TOOLS) {
    const file = resolve(bin, tool);
    const body = `#!/bin/sh\nexec ${shellQuote(process.execPath)} ${shellQuote(self)} --state ${shellQuote(resolve(dir))} ${tool} "$@"\n`;
    writeFileSync(file, body, { mode: 0o755 });
    chmodSync(file, 0o755);
  }
  io.print(resolve(bin));
  return 0;
}

const USAGE = `usage: hostsim [--state DIR] <tool> <args...>
tools: xm xl qm lvcreate lvextend lvremove lvrename lvs vgs lvm ietadm iscsiadm nimbus-admin openstack
management: vm create|destroy|list, lvm vgcreate|vgremove|path, iet list|sessions|portal,
            iscsi device|target, nimbus launch|state|terminate|path, nova add|status,
            resolve <path>, dump, shims <bindir>
the state folder is --state DIR or $VBS_SIM_STATE`;

export async function main(argv: string[]): Promise<{ code: number; io: Io }> {
  const io = new Io();
  let args = argv.slice(2);
  let dir: string | undefined;
  if (args[0] === '--state') {
    dir = args[1];
    args = args.slice(2);
  } else if (args[0]?.startsWith('--state=')) {
    dir = args[0].slice('--state='.length);
    args = args.slice(1);
  }
  dir ||= process.env.VBS_SIM_STATE || undefined;

  const invokedAs = basename(argv[1] ?? '').replace(/\.(c|m)?js$/, '');
  let tool: string | undefined;
  if (invokedAs !== 'hostsim' && Object.hasOwn(TOOLS, invokedAs)) tool = invokedAs;
  else tool = args.shift();

  if (!dir) {
    io.eprint('hostsim: no state folder: pass --state DIR or set VBS_SIM_STATE');
    return { code: 2, io };
  }
  const load = tool && Object.hasOwn(TOOLS, tool) ? TOOLS[tool] : undefined;
  if (!tool || !load) {
    if (tool) io.eprint(`hostsim: unknown tool '${tool}'`);
    io.eprint(USAGE);
    return { code: 2, io };
  }
  ensureDir(dir);
  const def = await load();
  try {
    let faultKey: [string, string] | undefined;
    if (def.verbOf) {
      const verb = def.verbOf(args);
      const t = tool === 'lvm' && verb.includes('.') ? (verb.split('.')[0] as string) : tool;
      const v = tool === 'lvm' && verb.includes('.') ? verb.slice(t.length + 1) : verb;
      faultKey = [t, v];
      await maybeHang(dir, t, v);
      const failure = injectedFailure(dir, t, v);
      if (failure) {
        io.eprint(failure.message);
        return { code: failure.code, io };
      }
    }
    const code = await def.run(io, dir, args);
    const after = faultKey && injectedFailureAfter(dir, ...faultKey);
    if (after) {
      io.eprint(after.message);
      return { code: after.code, io };
    }
    return { code, io };
  } catch (e) {
    if (e instanceof LockTimeout) {
      io.eprint(e.message);
      return { code: 3, io };
    }
    throw e;
  }
}

function flush(stream: NodeJS.WriteStream, chunks: string[]): Promise<void> {
  if (chunks.length === 0) return Promise.resolve();
  return new Promise((done) => stream.write(chunks.join(''), () => done()));
}

const isMain = (() => {
  const entry = process.argv[1];
  if (!entry) return false;
  const name = basename(entry).replace(/\.(c|m)?js$/, '');
  return name === 'hostsim' || Object.hasOwn(TOOLS, name);
})();

if (isMain) {
  main(process.argv)
    .then(async ({ code, io }) => {
      await flush(process.stdout, io.out);
      await flush(process.stderr, io.err);
      process.exitCode = code;
    })
    .catch((e: unknown) => {
      process.stderr.write(`hostsim: internal error: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
      process.exitCode = 70;
    });
}
