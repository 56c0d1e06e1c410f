import { inject } from 'vitest';

/**
 * Seeded choices for the cases a run samples (the crash matrices' points
 * where the hosts hold no state of their own). The seed changes from run to
 * run, so that over runs every case is tried, and is printed by the global
 * setup (test/setup/global.ts) and by the closing summary; a failure is
 * reproduced by running again with VBS_TEST_SEED set to it.
 *
 * A choice depends only on the seed and the name it is asked under (a
 * scenario's title), never on which other files or cases ran, so one file
 * run alone with the same seed makes the same choice.
 */

export const SEED_ENV = 'VBS_TEST_SEED';

/** Parses a seed as given in VBS_TEST_SEED: a whole number 0..2^32-1. */
export function parseSeed(text: string): number {
  if (!/^[0-9]{1,10}$/.test(text) || Number(text) > 0xffff_ffff) throw new Error(`${SEED_ENV} must be a whole number from 0 to 4294967295, not ${JSON.stringify(text)}`);
  return Number(text);
}

/** This run's seed: the one the global setup chose (or was given). */
export function runSeed(): number {
  const given = process.env[SEED_ENV];
  if (given !== undefined && given !== '') return parseSeed(given);
  const provided = inject('testSeed');
  if (provided === undefined) throw new Error(`no seed: run under vitest.config.ts (its global setup chooses one) or set ${SEED_ENV}`);
  return provided;
}

/** 32-bit FNV-1a of a string, to turn a name into part of a seed. */
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** mulberry32: a small, well-mixed generator; enough to pick test cases. */
export function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 0x1_0000_0000;
  };
}

/**
 * `count` of `items` (all of them if there are no more), chosen by the seed
 * and `name`, in their original order. The same seed, name and items give the
 * same choice.
 */
export function sampleOf<T>(items: readonly T[], count: number, name: string, seed: number): T[] {
  if (count >= items.length) return [...items];
  const next = generator((seed ^ hash32(name)) >>> 0);
  const order = items.map((_, i) => i);
  // Fisher–Yates, stopped once the first `count` places are drawn.
  for (let i = 0; i < count; i++) {
    const j = i + Math.floor(next() * (order.length - i));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const chosen = new Set(order.slice(0, count));
  return items.filter((_, i) => chosen.has(i));
}

declare module 'vitest' {
  export interface ProvidedContext {
    testSeed: number;
  }
}
