import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { expect, it } from 'vitest';
import { FAULTS } from '../../src/core/errors.js';

const ROOT = resolve(import.meta.dirname, '../..');

/** The rows of the fault table in docs/api.md: code, faultcode and HTTP status as written. */
function documentedFaults(): Map<string, { faultcode: string; http: number }> {
  const text = readFileSync(join(ROOT, 'docs', 'api.md'), 'utf8');
  const section = text.slice(text.indexOf('\n## Faults\n'), text.indexOf('\n## ', text.indexOf('\n## Faults\n') + 1));
  const rows = new Map<string, { faultcode: string; http: number }>();
  for (const m of section.matchAll(/^\| `([^`]+)` \| `soap:([A-Za-z]+)` \| (\d{3}) \|/gm)) {
    rows.set(m[1]!, { faultcode: m[2]!, http: Number(m[3]) });
  }
  return rows;
}

// The API reference promises every code a caller can see; the registry is the truth.
it('the API reference lists every fault code of src/core/errors.ts, with its faultcode and HTTP status, and no other', () => {
  const documented = documentedFaults();
  expect([...documented.keys()].sort()).toEqual(Object.keys(FAULTS).sort());
  for (const [code, { by, http }] of Object.entries(FAULTS)) {
    expect(documented.get(code), code).toEqual({ faultcode: by, http });
  }
});
