import { errorMessage } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { Record as XmlRecord } from '../soap/xml.js';
import type { DelegatePool } from './delegates.js';
import type { CreationMonitor } from './monitor.js';

export interface CopyWatchOptions {
  /** How long one WaitObjects may be held open by the delegate (at most its limit, 25 s). */
  readonly maxWaitMs: number;
  /** Wait after a failed WaitObjects; doubled after each failure in a row, up to maxBackoffMs. */
  readonly firstBackoffMs: number;
  readonly maxBackoffMs: number;
}

export const DEFAULT_COPY_WATCH: CopyWatchOptions = { maxWaitMs: 20_000, firstBackoffMs: 500, maxBackoffMs: 15_000 };

/** Beyond the wait itself, how long a WaitObjects answer may take to arrive. */
const ANSWER_MARGIN_MS = 10_000;

interface Watch {
  running: boolean;
  /** Where the delegate's change feed was at its last answer. */
  cursor?: string;
  /** Wakes a back-off early (a stop). */
  cancelSleep?: () => void;
}

/**
 * How the front learns that a volume delegate finished a copy as soon as it
 * happens: one long-poll (WaitObjects) outstanding to each volume delegate
 * that has volumes being created or snapshots being copied, and none to the
 * others. The delegate answers when an object leaves its in-progress state;
 * the answer goes through the creation monitor like a poll's.
 *
 * Nothing depends on it alone: the delegate never calls the front; a cursor
 * the delegate does not know (it restarted, or it is the front's first call)
 * is answered `reset`, and the front then asks about every object in
 * progress there (one DescribeObjects, which also restarts lost copies). A
 * failed wait backs off (bounded) and tries again while work remains; the
 * monitor's periodic poll stays as the fallback.
 */
export class CopyWatcher {
  private readonly watches = new Map<string, Watch>();
  private stopped = false;

  constructor(
    private readonly delegates: DelegatePool,
    private readonly monitor: CreationMonitor,
    private readonly log: Logger,
    private readonly o: CopyWatchOptions = DEFAULT_COPY_WATCH,
  ) {}

  /** Starts watching every delegate with something in progress (at start-up: what a restart left). */
  wakeAll(): void {
    for (const d of this.monitor.delegatesWithWork()) this.wake(d);
  }

  /** Something may now be in progress on `delegate`: watch it unless already watching. */
  wake(delegate: string): void {
    // A delegate the metadata names but the configuration no longer does is left to the fallback poll and the check.
    if (this.stopped || !this.delegates.volumeDelegateNames().includes(delegate)) return;
    // A copy that finished while its create workflow ran was not applied then: its news came already.
    void this.monitor.lookAgainAfterCreate(delegate).catch((err) => this.log.error('looking at held-back copies failed', { delegate, err }));
    const w = this.watches.get(delegate) ?? { running: false };
    this.watches.set(delegate, w);
    if (w.running) return;
    w.running = true;
    void this.watch(delegate, w).catch((err) => this.log.error('watching a volume delegate failed', { delegate, err }));
  }

  stop(): void {
    this.stopped = true;
    for (const w of this.watches.values()) w.cancelSleep?.();
  }

  /** Long-polls one delegate for as long as it has work in progress. */
  private async watch(delegate: string, w: Watch): Promise<void> {
    let failures = 0;
    try {
      while (!this.stopped && this.monitor.hasWorkOn(delegate)) {
        let answer: XmlRecord;
        try {
          answer = await this.delegates
            .volumeDelegate(delegate)
            .call('WaitObjects', { since: w.cursor, maxWaitMs: this.o.maxWaitMs }, this.o.maxWaitMs + ANSWER_MARGIN_MS);
        } catch (err) {
          // Only a read was cut: nothing to undo. The fallback poll still runs meanwhile.
          failures++;
          if (failures === 1) this.log.warn('waiting on a volume delegate failed; retrying with back-off', { delegate, message: errorMessage(err) });
          await this.sleep(w, Math.min(this.o.maxBackoffMs, this.o.firstBackoffMs * 2 ** (failures - 1)));
          continue;
        }
        if (this.stopped) return; // the front is closing: its metadata may be closed too
        if (failures) this.log.info('waiting on a volume delegate again', { delegate });
        failures = 0;
        if (answer.reset !== true) {
          w.cursor = String(answer.cursor);
          await this.monitor.apply(delegate, (answer.object as XmlRecord[] | undefined) ?? []);
        } else if (await this.monitor.pollDelegate(delegate)) {
          // Only once everything before it was looked at does the new cursor stand for it.
          w.cursor = String(answer.cursor);
        } else {
          await this.sleep(w, this.o.firstBackoffMs);
        }
      }
    } finally {
      // Reached in the same synchronous step as the last look for work: a wake cannot slip between them.
      w.running = false;
    }
  }

  private sleep(w: Watch, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        w.cancelSleep = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      w.cancelSleep = done;
    });
  }
}
