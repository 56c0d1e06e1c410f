/** One create that has started but not yet reserved its space (it may wait on the space lock). */
export interface Queued {
  cancelled: boolean;
}

/**
 * Creates that have been asked for but are not yet visible as a job: they
 * wait for the space lock behind other allocations. A delete that arrives
 * meanwhile (the front's create timed out and its undo runs) must not answer
 * "nothing there" and let the create run after it; it cancels them instead,
 * and the create, once it holds the lock, sees that and makes nothing.
 */
export class QueuedCreates {
  private readonly byId = new Map<string, Set<Queued>>();

  /** Runs `work` with the create registered as queued until it ends (by then it is a job, or nothing). */
  async track<T>(id: string, work: (q: Queued) => Promise<T>): Promise<T> {
    const q: Queued = { cancelled: false };
    const set = this.byId.get(id) ?? new Set<Queued>();
    this.byId.set(id, set.add(q));
    try {
      return await work(q);
    } finally {
      set.delete(q);
      if (!set.size && this.byId.get(id) === set) this.byId.delete(id);
    }
  }

  /** Cancels every queued create of `id`; true when there was one. */
  cancel(id: string): boolean {
    const set = this.byId.get(id);
    if (!set?.size) return false;
    for (const q of set) q.cancelled = true;
    return true;
  }
}
