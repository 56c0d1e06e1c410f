import { randomBytes } from 'node:crypto';

export const VOLUME_ID = /^vol-[0-9a-f]{17}$/;
export const SNAPSHOT_ID = /^snap-[0-9a-f]{17}$/;

export type IdKind = 'vol' | 'snap';

/** 17 random hex characters; the ids table (db) guarantees uniqueness. */
export function newId(kind: IdKind): string {
  return `${kind}-${randomBytes(9).toString('hex').slice(0, 17)}`;
}
