import type { Delegates } from '../core/delegates.js';
import type { KeyedMutex } from '../core/keyed-mutex.js';
import type { Logger } from '../core/log.js';
import type { Metadata } from '../db/metadata.js';

/** What every workflow kind may use. */
export interface WorkflowDeps {
  readonly meta: Metadata;
  readonly delegates: Delegates;
  /** Per volume and VMM host: whether a shared export or session is still needed, decided and acted on as one. */
  readonly hostLocks: KeyedMutex;
  readonly log: Logger;
}

/** The `hostLocks` key of a volume on a VMM host: its export and session there are decided under it. */
export function hostLockKey(volumeId: string, vmmHost: string): string {
  return `${volumeId}@${vmmHost}`;
}
