import { randomInt } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { TestProject } from 'vitest/node';
import { ensureDeploymentPki } from '../../src/deploy/all-in-one.js';
import { parseSeed, SEED_ENV } from '../sampling.js';

const ROOT = resolve(import.meta.dirname, '../..');

/**
 * Once per run, before any test file:
 *
 * - chooses the run's seed for sampled cases (test/sampling.ts), or takes the
 *   one VBS_TEST_SEED gives, hands it to every worker, prints it, and leaves
 *   it in .test-tmp/test-seed for the closing summary (scripts/summary.mjs),
 *   which prints it again beside the totals so a failing CI log names the
 *   seed that reproduces it;
 * - makes one deployment PKI that new deployments copy (test/setup/pki.ts).
 */
export default function setup(project: TestProject): () => void {
  const given = process.env[SEED_ENV];
  const seed = given !== undefined && given !== '' ? parseSeed(given) : randomInt(0, 0xffff_ffff);
  project.provide('testSeed', seed);
  mkdirSync(join(ROOT, '.test-tmp'), { recursive: true });
  writeFileSync(join(ROOT, '.test-tmp', 'test-seed'), `${seed}\n`);
  process.stderr.write(`test seed: ${seed} (${given ? `from ${SEED_ENV}` : `reproduce with ${SEED_ENV}=${seed}`})\n`);

  const pki = mkdtempSync(join(tmpdir(), 'vbs-test-pki-'));
  ensureDeploymentPki(pki);
  project.provide('pkiTemplate', join(pki, 'pki'));
  return () => rmSync(pki, { recursive: true, force: true });
}
