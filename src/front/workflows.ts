import { KeyedMutex } from '../core/keyed-mutex.js';
import type { Logger } from '../core/log.js';
import type { Db } from '../db/database.js';
import type { Metadata } from '../db/metadata.js';
import { attachKind, detachKind } from '../workflows/attach.js';
import { createSnapshotKind } from '../workflows/create-snapshot.js';
import { createVolumeKind } from '../workflows/create-volume.js';
import { deleteSnapshotKind, deleteVolumeKind } from '../workflows/delete.js';
import { WorkflowEngine, type WorkflowKind } from '../workflows/engine.js';
import type { DelegatePool } from './delegates.js';

/** The front's workflow kinds, registered with one engine for running and recovery. */
export class FrontWorkflows {
  readonly engine: WorkflowEngine;
  readonly createVolume;
  readonly createSnapshot;
  readonly deleteVolume;
  readonly deleteSnapshot;
  readonly attach;
  readonly detach;

  constructor(db: Db, meta: Metadata, delegates: DelegatePool, log: Logger, beforeStep?: (kind: string, step: string) => void) {
    this.engine = new WorkflowEngine(db, meta, log, beforeStep);
    const deps = { meta, delegates, hostLocks: new KeyedMutex() };
    this.createVolume = createVolumeKind(deps);
    this.createSnapshot = createSnapshotKind(deps);
    this.deleteVolume = deleteVolumeKind(deps);
    this.deleteSnapshot = deleteSnapshotKind(deps);
    this.attach = attachKind(deps);
    this.detach = detachKind(deps);
    for (const k of [this.createVolume, this.createSnapshot, this.deleteVolume, this.deleteSnapshot, this.attach, this.detach]) {
      this.engine.register(k);
    }
  }

  run<D extends object>(kind: WorkflowKind<D>, prepare: () => D): Promise<D> {
    return this.engine.run(kind, prepare);
  }
}
