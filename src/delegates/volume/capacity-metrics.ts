import type { Logger } from '../../core/log.js';
import { reportCapacity, type CapacityReading } from '../../core/metrics.js';
import type { VolumeBackend } from './backend.js';

/** A reading younger than this is served again: on lvm-iscsi each one runs lvs and vgs. */
const FRESH_MS = 10_000;
/** A scrape waits this long for a reading; a slower one is not served (the gauges are left out, not stale). */
const WAIT_MS = 5_000;

/**
 * Serves this volume delegate's capacity to the metrics scrape: read from the
 * back end at most every FRESH_MS, one read at a time, never making a scrape
 * wait past WAIT_MS. A read that fails leaves the gauges out of that scrape
 * (an absent series, not a wrong number). Returns the call that stops it.
 */
export function meterCapacity(delegate: string, backend: VolumeBackend, log: Logger): () => void {
  let last: { at: number; reading: CapacityReading | undefined } | undefined;
  let reading: Promise<CapacityReading | undefined> | undefined;
  const read = (): Promise<CapacityReading | undefined> =>
    (reading ??= backend
      .capacity()
      .then((c) => ({ backend: backend.type, ...c }))
      .catch((err: unknown) => {
        log.warn('reading the capacity for the metrics failed', { err });
        return undefined;
      })
      .then((r) => {
        last = { at: Date.now(), reading: r };
        reading = undefined;
        return r;
      }));
  return reportCapacity(delegate, async () => {
    if (last && Date.now() - last.at < FRESH_MS) return last.reading;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), WAIT_MS)));
    try {
      return await Promise.race([read(), late]);
    } finally {
      clearTimeout(timer);
    }
  });
}
