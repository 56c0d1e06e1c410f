import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findClientConfig } from '../../src/cli/config.js';
import { UsageError } from '../../src/cli/errors.js';
import { connectWithClientConfig, type CliRuntime } from '../../src/cli/runtime.js';
import { FakeFront, fakeRuntime, rec, run } from './fakes.js';

const cwd = '/home/alice';
const defaultFile = join(cwd, 'vbs-data', 'client.json');

function where(flag: string | undefined, env: Record<string, string | undefined>, existing: string[] = []) {
  return findClientConfig(flag, { cwd, env, fileExists: (f) => existing.includes(f) });
}

describe('findClientConfig', () => {
  it('prefers --config over VBS_CONFIG and ./vbs-data/client.json', () => {
    expect(where('conf/mine.json', { VBS_CONFIG: '/etc/vbs.json' }, [defaultFile])).toEqual({ file: join(cwd, 'conf/mine.json'), source: 'flag' });
  });

  it('uses VBS_CONFIG when there is no flag', () => {
    expect(where(undefined, { VBS_CONFIG: '/etc/vbs.json' }, [defaultFile])).toEqual({ file: '/etc/vbs.json', source: 'env' });
  });

  it('falls back to ./vbs-data/client.json when it exists', () => {
    expect(where(undefined, {}, [defaultFile])).toEqual({ file: defaultFile, source: 'default' });
    expect(where(undefined, { VBS_CONFIG: '' }, [defaultFile])).toEqual({ file: defaultFile, source: 'default' });
  });

  it('otherwise tells the user to run `vbs up` or pass --config', () => {
    expect(() => where(undefined, {})).toThrow(UsageError);
    expect(() => where(undefined, {})).toThrow(/run `vbs up`.*--config FILE/);
  });
});

describe('configuration in a command', () => {
  const describeNothing = () => new FakeFront({ DescribeVolumes: () => rec({ volume: [] }) });

  it('opens the file named by --config, resolved against the working directory', async () => {
    const runtime = fakeRuntime(describeNothing());
    expect(await run(runtime, '--config', 'my.json', 'describe-volumes')).toBe(0);
    expect(runtime.connected).toEqual([join(cwd, 'my.json')]);
  });

  it('accepts global options after the command name too', async () => {
    const runtime = fakeRuntime(describeNothing());
    expect(await run(runtime, 'describe-volumes', '--config', '/x/c.json', '--json')).toBe(0);
    expect(runtime.connected).toEqual(['/x/c.json']);
    expect(runtime.stdout.text).toBe('[]\n');
  });

  it('exits 2 with the advice when no configuration can be found', async () => {
    const front = describeNothing();
    const runtime = fakeRuntime(front, { env: {}, fileExists: () => false });
    expect(await run(runtime, 'describe-volumes')).toBe(2);
    expect(runtime.stderr.text).toMatch(/^vbs: no client configuration: run `vbs up`.*--config FILE/);
    expect(front.calls).toEqual([]);
  });

  it('closes the client when the command is done', async () => {
    const front = describeNothing();
    await run(fakeRuntime(front), 'describe-volumes');
    expect(front.closed).toBe(1);
  });
});

describe('connectWithClientConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vbs-cli-config-'));

  async function withRealConnect(file: string) {
    const runtime = fakeRuntime(new FakeFront(), { connect: connectWithClientConfig, env: {} } satisfies Partial<CliRuntime>);
    const code = await run(runtime, '--config', file, 'describe-volumes');
    return { code, stderr: runtime.stderr.text };
  }

  it('reports a missing file as a local error (exit 2)', async () => {
    const r = await withRealConnect(join(dir, 'absent.json'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^vbs: cannot read client configuration .*absent\.json/);
  });

  it('reports an invalid file as a local error (exit 2)', async () => {
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ url: 'not a url' }));
    const r = await withRealConnect(file);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^vbs: client configuration .*bad\.json is invalid: url/);
  });

  it('reports unusable key material as a local error (exit 2), not a stack trace', async () => {
    for (const name of ['key.pem', 'cert.pem', 'ca.pem']) writeFileSync(join(dir, name), 'not PEM\n');
    const file = join(dir, 'client.json');
    writeFileSync(file, JSON.stringify({ url: 'https://127.0.0.1:1/vbs', key: 'key.pem', cert: 'cert.pem', ca: 'ca.pem' }));
    const r = await withRealConnect(file);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^vbs: client configuration .*client\.json: its key, certificate or CA cannot be used/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
