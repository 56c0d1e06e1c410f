import { parseArgs } from 'node:util';
import type { Backend } from './deployment.js';

export interface SoakOptions {
  readonly seconds: number;
  readonly seed: number;
  readonly clients: number;
  readonly backend: Backend;
  /** Where the post-mortem goes (a new temporary folder when not given). */
  readonly out?: string;
}

export const USAGE = 'usage: npm run soak -- [--seconds N] [--seed S] [--clients C] [--backend file|lvm-iscsi] [--out DIR]';

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
        backend: { type: 'string' },
        out: { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const backend = values.backend ?? 'file';
  if (backend !== 'file' && backend !== 'lvm-iscsi') throw new UsageError('--backend must be file or lvm-iscsi');
  return {
    seconds: integer('seconds', values.seconds, 60, 1, 7 * 24 * 3600),
    seed: integer('seed', values.seed, randomSeed(), 0, 2 ** 32 - 1),
    clients: integer('clients', values.clients, 3, 1, 16),
    backend,
    out: values.out,
  };
}
