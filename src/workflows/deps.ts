import type { Metadata } from '../db/metadata.js';
import type { KeyedMutex } from '../core/keyed-mutex.js';
import type { DelegatePool } from '../front/delegates.js';

/** What every workflow kind may use. */
export interface WorkflowDeps {
  readonly meta: Metadata;
  readonly delegates: DelegatePool;
  /** Per volume and VMM host: whether a shared export or session is still needed, decided and acted on as one. */
  readonly hostLocks: KeyedMutex;
}
