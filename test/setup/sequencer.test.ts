import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { TestSpecification, Vitest } from 'vitest/node';
import LongestFirst from './sequencer.js';

const root = mkdtempSync(join(tmpdir(), 'vbs-sequencer-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function file(name: string, bytes: number): TestSpecification {
  const path = join(root, name);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, 'x'.repeat(bytes));
  return { moduleId: path, project: { name: '' } } as unknown as TestSpecification;
}

function sequencer(cached: Record<string, { duration: number; failed: boolean }> = {}): LongestFirst {
  const ctx = { config: { root }, cache: { getFileTestResults: (key: string) => cached[key] } };
  return new LongestFirst(ctx as unknown as Vitest);
}

const names = (specs: TestSpecification[]) => specs.map((s) => s.moduleId.slice(root.length + 1));

describe('the order test files start in', () => {
  mkdirSync(join(root, 'test'), { recursive: true });
  writeFileSync(join(root, 'test', 'durations.json'), JSON.stringify({ seconds: { 'test/crash.test.ts': 400, 'test/soak.test.ts': 300, 'test/mid.test.ts': 40 } }));
  const specs = [file('test/big-unit.test.ts', 20_000), file('test/soak.test.ts', 3_000), file('test/crash.test.ts', 300), file('test/new.test.ts', 1_000), file('test/mid.test.ts', 500), file('test/small.test.ts', 10)];

  it('on a fresh clone: longest measured first, an unmeasured file as a middling one, the rest by size', async () => {
    expect(names(await sequencer().sort(specs))).toEqual([
      'test/crash.test.ts',
      'test/soak.test.ts',
      'test/mid.test.ts',
      'test/big-unit.test.ts',
      'test/new.test.ts',
      'test/small.test.ts',
    ]);
  });

  it("this machine's own record of a passed file comes before the table", async () => {
    const order = names(await sequencer({ ':test/small.test.ts': { duration: 500_000, failed: false } }).sort(specs));
    expect(order[0]).toBe('test/small.test.ts');
    expect(order[1]).toBe('test/crash.test.ts');
  });
});
