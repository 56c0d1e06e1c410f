import { randomUUID } from 'node:crypto';
import { VbsError } from '../../core/errors.js';
import { longPollWaiting } from '../../core/metrics.js';

/** The longest WaitObjects may hold a request open: below every caller's timeout for it. */
export const MAX_WAIT_MS = 25_000;
/** Requests held open at once; one more is answered ServiceUnavailable (the front backs off). */
export const MAX_WAITERS = 32;
/** Changes remembered; a cursor older than these is answered `reset` (look at everything again). */
const MAX_REMEMBERED = 4_096;

/** What a WaitObjects asker learns: the ids that changed since its cursor, or that it must look again. */
export interface ChangesSince {
  /** Pass this back next time. */
  readonly cursor: string;
  /** The cursor is from another run of this delegate, or too old: changes may be missing, so look at every object in progress. */
  readonly reset: boolean;
  readonly ids: readonly string[];
}

/**
 * The feed of objects that finished being made (ready, or failed) on this
 * volume delegate, for the front's long-poll (WaitObjects): the front learns
 * of a finished copy the moment it happens instead of at its next poll.
 *
 * A cursor is `<run>:<sequence>`. The run changes with every start of the
 * delegate, so a front whose cursor is from before a restart (copies in
 * memory were lost) is told `reset` and looks at its objects afresh: nothing
 * depends on the feed alone, it only makes the news fast.
 */
export class ChangeFeed {
  private readonly run = randomUUID().slice(0, 8);
  private seq = 0;
  /** The last changes, oldest first: [sequence, id]. */
  private readonly recent: [number, string][] = [];
  private readonly waiters = new Set<() => void>();
  private closed = false;

  /** An object left its in-progress state. */
  record(id: string): void {
    this.recent.push([++this.seq, id]);
    if (this.recent.length > MAX_REMEMBERED) this.recent.splice(0, this.recent.length - MAX_REMEMBERED);
    for (const wake of [...this.waiters]) wake();
  }

  cursor(): string {
    return `${this.run}:${this.seq}`;
  }

  /** The ids changed after `cursor` (undefined: from nothing, so a reset). */
  since(cursor: string | undefined): ChangesSince {
    const now = this.cursor();
    const m = cursor === undefined ? null : /^([0-9a-f]{8}):([0-9]{1,15})$/.exec(cursor);
    const from = m && m[1] === this.run ? Number(m[2]) : undefined;
    const oldest = this.recent[0]?.[0] ?? this.seq + 1;
    // Older than what is remembered (or ahead of it: another run's number): changes may be lost.
    if (from === undefined || from > this.seq || from + 1 < oldest) return { cursor: now, reset: true, ids: [] };
    const ids = new Set<string>();
    for (const [seq, id] of this.recent) if (seq > from) ids.add(id);
    return { cursor: now, reset: false, ids: [...ids] };
  }

  /**
   * Answers at once when something changed after `cursor` (or it must be
   * reset), else when the next change comes, else after `waitMs`.
   * `only`: wake only for these ids (a create waiting for its own object).
   */
  async wait(cursor: string | undefined, waitMs: number, only?: ReadonlySet<string>): Promise<ChangesSince> {
    const relevant = (c: ChangesSince) => c.reset || c.ids.some((id) => !only || only.has(id));
    const first = this.since(cursor);
    if (relevant(first) || waitMs <= 0 || this.closed) return first;
    if (this.waiters.size >= MAX_WAITERS) throw new VbsError('ServiceUnavailable', 'Too many requests are waiting for changes on this volume delegate.');
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        if (this.waiters.delete(wake)) longPollWaiting(-1);
        resolve();
      };
      const wake = () => {
        if (this.closed || relevant(this.since(cursor))) done();
      };
      const timer = setTimeout(done, Math.min(waitMs, MAX_WAIT_MS));
      timer.unref();
      this.waiters.add(wake);
      longPollWaiting(1);
    });
    return this.since(cursor);
  }

  /** The service is closing: every waiter answers now. */
  close(): void {
    this.closed = true;
    for (const wake of [...this.waiters]) wake();
  }
}
