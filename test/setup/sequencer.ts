import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The order files start in: longest first, so that the two workers finish
 * together instead of one running a seven-minute file alone at the end.
 *
 * vitest's own order uses the durations it cached from an earlier run on this
 * machine and, on a fresh clone (CI), the files' sizes, which put the crash
 * matrices (files of a few lines driving minutes of work) last. So a file's
 * expected time comes from this machine's cache when there is one, else from
 * test/durations.json (seconds per file, measured: refresh it with
 * `node scripts/test-durations.mjs`), else a file not measured yet counts as
 * a middling one, ahead of the many small files.
 */
const UNMEASURED_MS = 30_000;

export default class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const root = this.ctx.config.root;
    const table = measured(root);
    const expected = (spec: TestSpecification): number => {
      const name = relative(root, spec.moduleId);
      const cached = this.ctx.cache.getFileTestResults(`${spec.project.name}:${name}`);
      if (cached && !cached.failed && cached.duration > 0) return cached.duration;
      const seconds = table[name];
      if (seconds !== undefined) return seconds * 1000;
      return UNMEASURED_MS;
    };
    const size = (spec: TestSpecification): number => statSync(spec.moduleId, { throwIfNoEntry: false })?.size ?? 0;
    return [...files].sort((a, b) => expected(b) - expected(a) || size(b) - size(a));
  }
}

function measured(root: string): Record<string, number> {
  const file = join(root, 'test', 'durations.json');
  if (!existsSync(file)) return {};
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as { seconds?: Record<string, number> };
  return parsed.seconds ?? {};
}
