import { parseArgs } from 'node:util';
import type { Backend } from './deployment.js';

export interface SoakOptions {
  readonly seconds: number;
  readonly seed: number;
  readonly clients: number;
  readonly backend: Backend;
  /**
   * The fewest requests the clients must make for the run to count: a soak
   * that did too little (a wedged front, clients stuck waiting) fails
   * instead of passing. Default: MIN_OPERATIONS_PER_MINUTE of the back end per minute run.
   */
  readonly minOperations: number;
  /** Where the post-mortem goes (a new temporary folder when not given). */
  readonly out?: string;
  /** rbd: the existing cluster (`vbs up --ceph-conf/--ceph-pool/--ceph-keyring`). */
  readonly ceph?: { readonly conf: string; readonly pool?: string; readonly keyring?: string };
}

export const USAGE = 'usage: npm run soak -- [--seconds N] [--seed S] [--clients C] [--backend file|lvm-iscsi|rbd] [--ceph-conf FILE [--ceph-pool P] [--ceph-keyring FILE]] [--min-operations N] [--out DIR]';

/** Clients by default: the issue asks for at least 8. */
export const DEFAULT_CLIENTS = 8;
/**
 * The default floor of requests per minute, per back end, on a 2-core machine
 * that also runs the rest of the test suite. On lvm-iscsi every simulated
 * LVM, IET or iscsiadm command is a Node process of its own (several per
 * create, attach or delete), so the same clients make about a third as many
 * requests: a 2-minute CI run made 74 there (50 at another seed), and 200 or more on files.
 * On rbd every `rbd` or `ceph` command is a process that connects to the
 * cluster (librados: a second or more of CPU on a loaded machine), and each
 * attach starts vbs-qmp against a real QEMU: 57 requests in a minute at load
 * 22, 59 in two at load 30, so the same floor as lvm-iscsi.
 */
export const MIN_OPERATIONS_PER_MINUTE: Readonly<Record<Backend, number>> = { file: 100, 'lvm-iscsi': 20, rbd: 20 };

export class UsageError extends Error {}

function integer(name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be a whole number from ${min} to ${max}`);
  return n;
}

/** The soak's command line; every value checked, with a usage error for anything else. */
export function parseSoakOptions(argv: readonly string[], randomSeed: () => number): SoakOptions {
  let values;
  try {
    values = parseArgs({
      args: [...argv],
      options: {
        seconds: { type: 'string' },
        seed: { type: 'string' },
        clients: { type: 'string' },
        'min-operations': { type: 'string' },
        backend: { type: 'string' },
        out: { type: 'string' },
        'ceph-conf': { type: 'string' },
        'ceph-pool': { type: 'string' },
        'ceph-keyring': { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const backend = values.backend ?? 'file';
  if (backend !== 'file' && backend !== 'lvm-iscsi' && backend !== 'rbd') throw new UsageError('--backend must be file, lvm-iscsi or rbd');
  const conf = values['ceph-conf'];
  if ((backend === 'rbd') !== (conf !== undefined)) throw new UsageError(backend === 'rbd' ? '--backend rbd needs --ceph-conf FILE' : '--ceph-conf goes with --backend rbd');
  if (backend !== 'rbd' && (values['ceph-pool'] !== undefined || values['ceph-keyring'] !== undefined)) throw new UsageError('--ceph-pool and --ceph-keyring go with --backend rbd');
  const seconds = integer('seconds', values.seconds, 60, 1, 7 * 24 * 3600);
  return {
    seconds,
    seed: integer('seed', values.seed, randomSeed(), 0, 2 ** 32 - 1),
    clients: integer('clients', values.clients, DEFAULT_CLIENTS, 1, 32),
    backend,
    minOperations: integer('min-operations', values['min-operations'], Math.ceil((seconds * MIN_OPERATIONS_PER_MINUTE[backend]) / 60), 0, 2 ** 31),
    out: values.out,
    ...(conf !== undefined ? { ceph: { conf, pool: values['ceph-pool'], keyring: values['ceph-keyring'] } } : {}),
  };
}
