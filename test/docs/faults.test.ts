import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { expect, it } from 'vitest';
import { FAULTS, VbsError, type FaultCode } from '../../src/core/errors.js';
import { errorStatus } from '../../src/ec2/xml.js';

const ROOT = resolve(import.meta.dirname, '../..');

interface Row {
  readonly faultcode: string;
  readonly http: number;
  /** The EC2 API's status; undefined for the SOAP-only codes (written —). */
  readonly ec2?: number;
}

/** The rows of the fault table in docs/api.md: code, faultcode, and the SOAP and EC2 HTTP statuses as written. */
function documentedFaults(): Map<string, Row> {
  const text = readFileSync(join(ROOT, 'docs', 'api.md'), 'utf8');
  const section = text.slice(text.indexOf('\n## Faults\n'), text.indexOf('\n## ', text.indexOf('\n## Faults\n') + 1));
  const rows = new Map<string, Row>();
  for (const m of section.matchAll(/^\| `([^`]+)` \| `soap:([A-Za-z]+)` \| (\d{3}) \| (\d{3}|—) \|/gm)) {
    rows.set(m[1]!, { faultcode: m[2]!, http: Number(m[3]), ...(m[4] === '—' ? {} : { ec2: Number(m[4]) }) });
  }
  return rows;
}

/** SOAP's own two codes, which the EC2 API never sends. */
const soapOnly = (by: string) => by === 'VersionMismatch' || by === 'MustUnderstand';

// The API reference promises every code a caller can see; the registry, and the EC2 listener's status mapping, are the truth.
it('the API reference lists every fault code of src/core/errors.ts, with its faultcode and its SOAP and EC2 HTTP statuses, and no other', () => {
  const documented = documentedFaults();
  expect([...documented.keys()].sort()).toEqual(Object.keys(FAULTS).sort());
  for (const [code, { by, http }] of Object.entries(FAULTS)) {
    const ec2 = soapOnly(by) ? {} : { ec2: errorStatus(new VbsError(code as FaultCode, '')) };
    expect(documented.get(code), code).toEqual({ faultcode: by, http, ...ec2 });
  }
});

it("the EC2 statuses are EC2's classes: 400 for the caller's faults, 401/403 for authentication, 5xx for ours", () => {
  for (const [code, { by }] of Object.entries(FAULTS)) {
    if (soapOnly(by)) continue;
    const status = errorStatus(new VbsError(code as FaultCode, ''));
    if (by === 'Server') expect([500, 503], code).toContain(status);
    else expect(status >= 400 && status < 500, code).toBe(true);
  }
  expect(errorStatus(new VbsError('ServiceUnavailable', ''))).toBe(503);
  expect(errorStatus(new VbsError('InvalidParameterValue', ''))).toBe(400);
  expect(errorStatus(new VbsError('SignatureDoesNotMatch', ''))).toBe(403);
  expect(errorStatus(new VbsError('MissingAuthenticationToken', ''))).toBe(401);
});
