import { describe, expect, it } from 'vitest';
import { fault, FakeFront, fakeRuntime, rec, run, VOL } from './fakes.js';

const orphan = { kind: 'orphan-object', resource: VOL, location: 'local', detail: 'no volume owns it; reported only, never deleted', repaired: false };
const fixed = { kind: 'missing-export', resource: `${VOL}/vm1`, location: 'local', detail: "exported to 'localhost' again", repaired: true };

async function admin(front: FakeFront, ...args: string[]) {
  const runtime = fakeRuntime(front);
  const code = await run(runtime, ...args);
  return { code, stdout: runtime.stdout.text, stderr: runtime.stderr.text };
}

describe('vbs admin check', () => {
  it('clean: says so and exits 0', async () => {
    const front = new FakeFront({ CheckConsistency: () => rec({ clean: true, finding: [] }) });
    const r = await admin(front, 'admin', 'check');
    expect(r).toEqual({ code: 0, stdout: 'No differences: the metadata matches what every delegate reports.\n', stderr: '' });
    expect(front.calls).toEqual([{ operation: 'CheckConsistency', input: { repair: false } }]);
  });

  it('differences: a table, and exit 1 with how many remain', async () => {
    const front = new FakeFront({ CheckConsistency: () => rec({ clean: false, finding: [orphan] }) });
    const r = await admin(front, 'admin', 'check');
    expect(r.code).toBe(1);
    expect(r.stdout.split('\n')[0]).toMatch(/^KIND\s+RESOURCE\s+LOCATION\s+REPAIRED\s+DETAIL$/);
    expect(r.stdout).toContain(`orphan-object  ${VOL}  local     no        no volume owns it`);
    expect(r.stdout).toContain('1 finding, 0 repaired.');
    expect(r.stderr).toBe('vbs: 1 difference between the metadata and the delegates remains; `vbs admin check --repair` fixes what is safe to fix.\n');
  });

  it('--repair sends repair and exits 0 when everything found was repaired', async () => {
    const front = new FakeFront({ CheckConsistency: () => rec({ clean: true, finding: [fixed] }) });
    const r = await admin(front, 'admin', 'check', '--repair');
    expect(front.calls[0]!.input).toEqual({ repair: true });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/missing-export\s+\S+\s+local\s+yes/);
    expect(r.stdout).toContain('1 finding, 1 repaired.');
  });

  it('--json prints the result with the WSDL field names; exit 1 when not clean', async () => {
    const front = new FakeFront({ CheckConsistency: () => rec({ clean: false, finding: [fixed, orphan] }) });
    const r = await admin(front, '--json', 'admin', 'check', '--repair');
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({ clean: false, finding: [fixed, orphan] });
    expect(r.stderr).toMatch(/^vbs: 1 difference between the metadata and the delegates remains\.\n$/);
    const after = await admin(new FakeFront({ CheckConsistency: () => rec({ clean: true }) }), 'admin', 'check', '--json');
    expect(JSON.parse(after.stdout)).toEqual({ clean: true, finding: [] });
  });

  it('a fault prints its code and exits 1', async () => {
    const front = new FakeFront({
      CheckConsistency: () => {
        throw fault('UnauthorizedOperation', 'Only VBS administrators may check consistency.');
      },
    });
    const r = await admin(front, 'admin', 'check');
    expect(r).toEqual({ code: 1, stdout: '', stderr: 'vbs: UnauthorizedOperation: Only VBS administrators may check consistency.\n' });
  });

  it('a check is retried when the front is unreachable; a repair is not', async () => {
    let n = 0;
    const flaky = () => new FakeFront({
      CheckConsistency: () => {
        if (n++ === 0) throw fault('ServiceUnavailable', 'the front could not be reached.');
        return rec({ clean: true, finding: [] });
      },
    });
    expect((await admin(flaky(), 'admin', 'check')).code).toBe(0);
    n = 0;
    const r = await admin(flaky(), 'admin', 'check', '--repair');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ServiceUnavailable/);
  });

  it('unknown options are usage errors (exit 2)', async () => {
    const front = new FakeFront({});
    expect((await admin(front, 'admin', 'check', '--fix')).code).toBe(2);
    expect(front.calls).toEqual([]);
  });
});
