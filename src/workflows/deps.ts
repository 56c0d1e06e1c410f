import type { Metadata } from '../db/metadata.js';
import type { DelegatePool } from '../front/delegates.js';

/** What every workflow kind may use. */
export interface WorkflowDeps {
  readonly meta: Metadata;
  readonly delegates: DelegatePool;
}
