import { describe, expect, it } from 'vitest';
import { parseSeed, runSeed, sampleOf } from '../sampling.js';

const points = ['journaled', '1/before', '2/before', '3/before', '4/before', 'commit'];

describe('sampled cases', () => {
  it('the same seed and name choose the same cases, in their original order', () => {
    const a = sampleOf(points, 2, 'AttachVolume (w)', 1234);
    expect(a).toHaveLength(2);
    expect(sampleOf(points, 2, 'AttachVolume (w)', 1234)).toEqual(a);
    expect(points.filter((p) => a.includes(p))).toEqual(a);
  });

  it('other seeds choose other cases, and a few dozen runs go through every case', () => {
    const seen = new Set<string>();
    const choices = new Set<string>();
    for (let seed = 0; seed < 40; seed++) {
      const chosen = sampleOf(points, 2, 'AttachVolume (w)', seed);
      for (const p of chosen) seen.add(p);
      choices.add(chosen.join());
    }
    expect([...seen].sort()).toEqual([...points].sort());
    expect(choices.size).toBeGreaterThan(5);
  });

  it('scenarios under the same seed choose independently', () => {
    const differs = Array.from({ length: 20 }, (_, seed) => sampleOf(points, 2, 'A', seed).join() !== sampleOf(points, 2, 'B', seed).join());
    expect(differs).toContain(true);
  });

  it('asking for as many as there are, or more, gives all of them', () => {
    expect(sampleOf(points, 6, 'x', 1)).toEqual(points);
    expect(sampleOf(points, 9, 'x', 1)).toEqual(points);
    expect(sampleOf([], 1, 'x', 1)).toEqual([]);
  });

  it('a seed is a whole number of 32 bits; anything else is refused with the variable named', () => {
    expect(parseSeed('0')).toBe(0);
    expect(parseSeed('4294967295')).toBe(4294967295);
    for (const bad of ['', '-1', '1.5', '4294967296', '0x10', ' 7', 'seed']) expect(() => parseSeed(bad), bad).toThrow(/VBS_TEST_SEED/);
  });

  it("this run's seed comes from the global setup (or VBS_TEST_SEED)", () => {
    const seed = runSeed();
    expect(Number.isInteger(seed) && seed >= 0 && seed <= 0xffff_ffff).toBe(true);
  });
});
