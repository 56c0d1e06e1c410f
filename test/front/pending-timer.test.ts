import { afterEach, expect, it, vi } from 'vitest';
import { everyUnlessRunning } from '../../src/front/pending-timer.js';

afterEach(() => vi.useRealTimers());

it('the pending-work timer never starts a run while the last one is still going', async () => {
  vi.useFakeTimers();
  let runs = 0;
  let finish!: () => void;
  const stop = everyUnlessRunning(
    () => {
      runs++;
      return new Promise<void>((r) => (finish = r));
    },
    2_000,
    () => {},
  );
  await vi.advanceTimersByTimeAsync(10_000); // five ticks while the first run hangs
  expect(runs).toBe(1);
  finish();
  await vi.advanceTimersByTimeAsync(2_000);
  expect(runs).toBe(2);
  stop();
  finish();
  await vi.advanceTimersByTimeAsync(10_000);
  expect(runs).toBe(2);
});

it('a run that fails is reported and the next tick runs again', async () => {
  vi.useFakeTimers();
  const errors: unknown[] = [];
  let runs = 0;
  const stop = everyUnlessRunning(async () => {
    runs++;
    throw new Error('boom');
  }, 1_000, (e) => errors.push(e));
  await vi.advanceTimersByTimeAsync(3_000);
  stop();
  expect(runs).toBe(3);
  expect(errors).toHaveLength(3);
});
