import { describe, expect, it } from 'vitest';
import { FakeFront, fakeRuntime, run, VOL } from './fakes.js';

/** Runs a command line against a front that must never be called. */
async function rejected(...args: string[]) {
  const front = new FakeFront();
  const runtime = fakeRuntime(front);
  const code = await run(runtime, ...args);
  return { code, stderr: runtime.stderr.text, stdout: runtime.stdout.text, front, runtime };
}

describe('local validation', () => {
  it.each([['0'], ['abc'], ['1.5'], ['16385'], ['5GiB']])('refuses size %j with exit 2 before any call', async (size) => {
    const r = await rejected('create-volume', size);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('vbs: InvalidParameterValue: Value for parameter size is invalid: expected a whole number of GiB from 1 to 16384.\n');
    expect(r.front.calls).toEqual([]);
    // Not even the configuration is read for a command that cannot be sent.
    expect(r.runtime.connected).toEqual([]);
  });

  it('refuses a mode other than r or w', async () => {
    const r = await rejected('attach-volume', VOL, 'localhost', 'vm1', 'xvdb', '--mode', 'x');
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('vbs: InvalidParameterValue: Value for parameter mode is invalid: expected r or w.\n');
    expect(r.front.calls).toEqual([]);
  });

  it.each([
    ['delete-volume', 'vol-123'],
    ['describe-volumes', VOL, 'volume-1'],
    ['create-snapshot', 'snap-0123456789abcdef0'],
    ['delete-snapshot', VOL],
    ['attach-volume', VOL, 'bad host!', 'vm1', 'xvdb'],
    ['attach-volume', VOL, 'localhost', 'vm/1', 'xvdb'],
    ['attach-volume', VOL, 'localhost', 'vm1', 'floppy'],
    ['detach-volume', VOL, '--vm-id', '../vm'],
    ['create-volume', '5', 'comment', 'vol-0123456789abcdef0'],
    ['create-volume', '5', '--client-token', 'has space'],
  ])('refuses malformed input: %s %s', async (...args) => {
    const r = await rejected(...args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^vbs: InvalidParameterValue: Value for parameter \w+ is invalid: .+\.\n$/);
    expect(r.front.calls).toEqual([]);
  });

  it('reports commander usage errors as "vbs: ..." with exit 2', async () => {
    const missing = await rejected('delete-volume');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe("vbs: missing required argument 'volume-id'\n");

    const unknown = await rejected('describe-volumes', '--bogus');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe("vbs: unknown option '--bogus'\n");

    const typo = await rejected('create-volum');
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain("vbs: unknown command 'create-volum'");
    expect(typo.stderr).toContain('Did you mean create-volume?');
  });

  it('refuses a --timeout that is not a positive number', async () => {
    const r = await rejected('--wait', '--timeout', '0', 'create-volume', '5');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('expected a positive number of seconds');
    expect(r.front.calls).toEqual([]);
  });

  it('shows help with exit 0, and exit 2 when no command is given', async () => {
    const help = await rejected('--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('create-volume [options] <size> [comment] [snapshot-id]');
    expect(help.stdout).toContain('attach-volume [options] <volume-id> <instance-id|vmm-host> <device|vm-id> [device]');

    const none = await rejected();
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('Usage: vbs');
  });
});
