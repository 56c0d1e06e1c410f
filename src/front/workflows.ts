import type { Delegates } from '../core/delegates.js';
import { KeyedMutex } from '../core/keyed-mutex.js';
import type { Logger } from '../core/log.js';
import type { Db } from '../db/database.js';
import { nextGeneration } from '../db/generations.js';
import type { Metadata } from '../db/metadata.js';
import { attachKind, detachKind } from '../workflows/attach.js';
import { createSnapshotKind } from '../workflows/create-snapshot.js';
import { createVolumeKind } from '../workflows/create-volume.js';
import { deleteSnapshotKind, deleteVolumeKind } from '../workflows/delete.js';
import { forceDetachKind } from '../workflows/force-detach.js';
import { modifyVolumeKind } from '../workflows/modify-volume.js';
import { importImageKind, UploadDesk } from '../workflows/import-image.js';
import { WorkflowEngine, type ClaimOptions, type RetryOptions, type WorkflowKind } from '../workflows/engine.js';

/** The front's workflow kinds, registered with one engine for running and recovery. */
export class FrontWorkflows {
  readonly engine: WorkflowEngine;
  readonly createVolume;
  readonly createSnapshot;
  readonly deleteVolume;
  readonly deleteSnapshot;
  readonly attach;
  readonly detach;
  /** Per volume and VMM host (see WorkflowDeps): the consistency check's export repairs take them too. */
  readonly hostLocks = new KeyedMutex();
  readonly forceDetach;
  readonly modifyVolume;
  readonly importImage;
  /** The bodies of the image uploads in progress, for the ImportImage step. */
  readonly uploads = new UploadDesk();

  constructor(
    private readonly db: Db,
    meta: Metadata,
    delegates: Delegates,
    log: Logger,
    beforeStep?: (kind: string, step: string) => void,
    retry?: Partial<RetryOptions>,
    claims?: ClaimOptions,
  ) {
    this.engine = new WorkflowEngine(db, meta, log, beforeStep, retry, claims);
    const deps = { meta, delegates, hostLocks: this.hostLocks, log };
    this.createVolume = createVolumeKind(deps);
    this.createSnapshot = createSnapshotKind(deps);
    this.deleteVolume = deleteVolumeKind(deps);
    this.deleteSnapshot = deleteSnapshotKind(deps);
    this.attach = attachKind(deps);
    this.detach = detachKind(deps);
    this.forceDetach = forceDetachKind(deps);
    this.modifyVolume = modifyVolumeKind(deps);
    this.importImage = importImageKind(deps, this.uploads);
    for (const k of [this.createVolume, this.createSnapshot, this.deleteVolume, this.deleteSnapshot, this.attach, this.detach, this.forceDetach, this.modifyVolume, this.importImage]) {
      this.engine.register(k);
    }
  }

  /**
   * Called with the volume delegate of each create that ended with a copy
   * still in progress there (the front starts long-polling it).
   */
  onCopyStarted: (delegate: string) => void = () => {};

  /** `resource`: the volume or snapshot it acts on, when known before preparing (its unfinished work runs first). */
  async run<D extends object>(kind: WorkflowKind<D>, prepare: () => D, resource?: string): Promise<D> {
    // The workflow takes its resource's next generation in the transaction
    // that journals it; its delegate calls carry it (src/db/generations.ts).
    const numbered = (): D => {
      const d = prepare();
      return Object.assign(d, { generation: nextGeneration(this.db, kind.resourceOf(d)) });
    };
    const data = await this.engine.run(kind, numbered, resource);
    if (kind === (this.createVolume as unknown) || kind === (this.createSnapshot as unknown)) {
      const made = data as { delegate: string; made?: { state: string } };
      if (made.made?.state !== 'ready' && made.made?.state !== 'error') this.onCopyStarted(made.delegate);
    }
    return data;
  }
}
