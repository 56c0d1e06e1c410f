#!/usr/bin/env node
import { readdirSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { QmpClient, QmpError } from './client.js';
import { CEPH_KEY, CEPH_POOL, CEPH_USER, MONITORS } from '../core/rbd-export.js';
import { VOLUME_ID } from '../core/ids.js';
import { attachDisk, detachDisk, listDisks, resizeDisk, type DiskImage } from './disks.js';

/**
 * vbs-qmp: the qemu adapter's host tool, run from commands.properties as
 * `<node> <vbsHome>/dist/qmp/tool.js --dir <stateDir> ...`. Each VM's QMP
 * monitor is the unix socket `<dir>/<vmId>.qmp` (QEMU started with
 * `-qmp unix:<dir>/<vmId>.qmp,server=on,wait=off`).
 *
 *   list-vms                                   the VMs whose socket is in the folder, one a line
 *   query-block <vmId>                         QMP query-block, as JSON, with VBS's orphan block nodes
 *                                              (see orphanNodes in disks.ts)
 *   attach <vmId> <dev> file <path> <ro|rw>
 *   attach <vmId> <dev> iscsi <host> <port> <iqn> <lun> <ro|rw> [<initiator>]
 *     (<initiator>: the iSCSI initiator name QEMU logs in as, the one the
 *     target admits for this host; without it, one name per VM). When the
 *     environment names a CHAP account (VBS_CHAP_USER), its secret is read
 *     from standard input and handed to QEMU over QMP as a secret object:
 *     it is never on a command line.
 *   attach <vmId> <dev> rbd <pool> <image> <host:port,...> <ro|rw>
 *     (a Ceph RBD image QEMU opens itself; the cephx client id in VBS_CEPH_USER,
 *     its key on standard input, handed to QEMU as a secret object)
 *   detach <vmId> <dev>
 *   resize <vmId> <dev> <bytes>                block_resize of the disk's node (never smaller: see resizeDisk)
 *
 * Exit codes, like the hypervisor tools VBS drives: 0 done, 1 the VM or QEMU
 * refused (message on stderr), 2 usage. Every argument is checked here too,
 * whatever the pattern that called it checked.
 */
const VM_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const DEV = /^(?:sd|vd|hd|xvd)[a-z]{1,2}$/;
const HOST = /^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})$/;
const IQN = /^iqn\.[0-9]{4}-[0-9]{2}\.[a-z0-9.-]+(?::[A-Za-z0-9.:_-]+)?$/;
const CONNECT_TIMEOUT_MS = 10_000;

class Usage extends Error {}

function need(value: string | undefined, re: RegExp, what: string): string {
  if (value === undefined || !re.test(value)) throw new Usage(`${what} is missing or invalid`);
  return value;
}

function number(value: string | undefined, max: number, what: string): number {
  if (value === undefined || !/^[0-9]{1,5}$/.test(value) || Number(value) > max) throw new Usage(`${what} is missing or invalid`);
  return Number(value);
}

function access(value: string | undefined): boolean {
  if (value !== 'ro' && value !== 'rw') throw new Usage('access must be ro or rw');
  return value === 'ro';
}

function image(kind: string | undefined, rest: string[]): { image: DiskImage; accessArg: string | undefined } {
  if (kind === 'file') {
    const path = rest[0];
    if (!path || !isAbsolute(path) || path.split('/').includes('..') || /[\0\n\r]/.test(path)) throw new Usage('path must be absolute');
    return { image: { kind: 'file', path }, accessArg: rest[1] };
  }
  if (kind === 'iscsi') {
    return {
      image: {
        kind: 'iscsi',
        host: need(rest[0], HOST, 'host'),
        port: number(rest[1], 65535, 'port'),
        iqn: need(rest[2], IQN, 'iqn'),
        lun: number(rest[3], 16383, 'lun'),
        ...(rest[5] === undefined ? {} : { initiator: need(rest[5], IQN, 'initiator') }),
      },
      accessArg: rest[4],
    };
  }
  if (kind === 'rbd') {
    const servers = need(rest[2], MONITORS, 'monitors')
      .split(',')
      .map((m) => {
        const i = m.lastIndexOf(':');
        return { host: m.slice(0, i), port: number(m.slice(i + 1), 65535, 'monitor port') };
      });
    // user and key are filled in by main (environment, standard input).
    return { image: { kind: 'rbd', pool: need(rest[0], CEPH_POOL, 'pool'), image: need(rest[1], VOLUME_ID, 'image'), servers, user: '', key: '' }, accessArg: rest[3] };
  }
  throw new Usage('the image kind must be file, iscsi or rbd');
}

/** The cephx client id from the environment and its key from standard input (one line). */
async function cephAccount(user: string | undefined): Promise<{ user: string; key: string }> {
  if (user === undefined || !CEPH_USER.test(user)) throw new Usage('VBS_CEPH_USER is missing or not a cephx client id');
  const key = (await readStdin(256)).replace(/\r?\n$/, '');
  if (!CEPH_KEY.test(key)) throw new Usage('standard input holds no cephx key');
  return { user, key };
}

async function readStdin(max: number): Promise<string> {
  let text = '';
  for await (const chunk of process.stdin) {
    text += String(chunk);
    if (text.length > max) throw new Usage('standard input is too long');
  }
  return text;
}

const CHAP_USER = /^[A-Za-z0-9][A-Za-z0-9.:_-]{0,222}$/;
const CHAP_SECRET = /^[A-Za-z0-9_-]{16,128}$/;

/** The CHAP account: its name from the environment, its secret from standard input (one line). */
async function chapAccount(user: string): Promise<{ user: string; secret: string }> {
  if (!CHAP_USER.test(user)) throw new Usage('VBS_CHAP_USER is not a CHAP account name');
  let text = '';
  for await (const chunk of process.stdin) {
    text += String(chunk);
    if (text.length > 1024) throw new Usage('standard input is too long for a CHAP secret');
  }
  const secret = text.replace(/\r?\n$/, '');
  if (!CHAP_SECRET.test(secret)) throw new Usage('standard input holds no CHAP secret (16 to 128 of A-Z a-z 0-9 _ -)');
  return { user, secret };
}

function listVms(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.qmp') && VM_ID.test(f.slice(0, -4)))
    .filter((f) => {
      try {
        return statSync(join(dir, f)).isSocket();
      } catch {
        return false;
      }
    })
    .map((f) => f.slice(0, -4))
    .sort();
}

async function withVm<T>(dir: string, vmId: string, work: (qmp: QmpClient) => Promise<T>): Promise<T> {
  if (!listVms(dir).includes(vmId)) throw new QmpError('connect', 'DeviceNotFound', `no VM ${vmId}: no QMP socket ${vmId}.qmp in ${dir}`);
  const qmp = await QmpClient.connect(join(dir, `${vmId}.qmp`), CONNECT_TIMEOUT_MS);
  try {
    return await work(qmp);
  } finally {
    qmp.close();
  }
}

async function main(argv: string[]): Promise<void> {
  if (argv[0] !== '--dir' || !argv[1] || !isAbsolute(argv[1])) throw new Usage('--dir <absolute folder of QMP sockets> comes first');
  const dir = argv[1];
  const [command, ...args] = argv.slice(2);
  switch (command) {
    case 'list-vms':
      for (const vm of listVms(dir)) process.stdout.write(`${vm}\n`);
      return;
    case 'query-block': {
      const vmId = need(args[0], VM_ID, 'vmId');
      process.stdout.write(`${JSON.stringify(await withVm(dir, vmId, listDisks))}\n`);
      return;
    }
    case 'attach': {
      const vmId = need(args[0], VM_ID, 'vmId');
      const dev = need(args[1], DEV, 'device');
      const { image: parsed, accessArg } = image(args[2], args.slice(3));
      const readOnly = access(accessArg);
      const img =
        parsed.kind === 'iscsi' && process.env.VBS_CHAP_USER !== undefined
          ? { ...parsed, chap: await chapAccount(process.env.VBS_CHAP_USER) }
          : parsed.kind === 'rbd'
            ? { ...parsed, ...(await cephAccount(process.env.VBS_CEPH_USER)) }
            : parsed;
      await withVm(dir, vmId, (qmp) => attachDisk(qmp, vmId, { dev, image: img, readOnly }));
      return;
    }
    case 'detach': {
      const vmId = need(args[0], VM_ID, 'vmId');
      const dev = need(args[1], DEV, 'device');
      await withVm(dir, vmId, (qmp) => detachDisk(qmp, dev));
      return;
    }
    case 'resize': {
      const vmId = need(args[0], VM_ID, 'vmId');
      const dev = need(args[1], DEV, 'device');
      const bytes = need(args[2], /^[1-9][0-9]{0,15}$/, 'bytes');
      await withVm(dir, vmId, (qmp) => resizeDisk(qmp, dev, Number(bytes)));
      return;
    }
    default:
      throw new Usage(`unknown command ${command ?? '(none)'}`);
  }
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (err: unknown) => {
    const usage = err instanceof Usage;
    process.stderr.write(`vbs-qmp: ${usage ? 'usage: ' : 'error: '}${(err as Error).message}\n`);
    process.exit(usage ? 2 : 1);
  },
);
