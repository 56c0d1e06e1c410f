import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVbs, type Vbs } from '../harness.js';

/** `vbs up` starts the instance resolver and configures scan, then the operator's map (static). */
let vbs: Vbs;

beforeAll(async () => {
  vbs = await startVbs();
});

afterAll(async () => {
  await vbs?.stop();
});

async function json<T>(...args: string[]): Promise<T> {
  const r = await vbs.cli('--json', ...args);
  if (r.code !== 0) throw new Error(`vbs ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

describe('vbs up: the integrated mode without a cloud', () => {
  it('runs the instance resolver as its own process, and the front knows it', () => {
    const front = JSON.parse(readFileSync(join(vbs.dir, 'front.json'), 'utf8')) as { instances: { resolvers: string[]; resolverUrl: string } };
    expect(front.instances.resolvers).toEqual(['scan', 'static']);
    const resolver = JSON.parse(readFileSync(join(vbs.dir, 'instance-resolver.json'), 'utf8')) as { listen: { port: number } };
    expect(front.instances.resolverUrl).toBe(`https://127.0.0.1:${resolver.listen.port}/instance-resolver`);
    expect(existsSync(join(vbs.dir, 'instances.json'))).toBe(true);
  });

  it('a VM\'s own name is an instance id (scan); an id in instances.json is one too (static)', async () => {
    const vol = (await json<{ volumeId: string }>('create-volume', '1', '--wait')).volumeId;
    const a = await json<{ vmmHost: string; vmId: string; instanceId: string; status: string }>('attach-volume', vol, 'vm1', 'xvdb', '--wait');
    expect(a).toMatchObject({ vmmHost: 'localhost', vmId: 'vm1', instanceId: 'vm1', status: 'attached' });
    await json('detach-volume', vol, '--instance-id', 'vm1', '--wait');

    expect((await vbs.cli('attach-volume', vol, 'i-0a1b2c3d', 'xvdb')).stderr).toMatch(/^vbs: InvalidInstanceID\.NotFound/);
    writeFileSync(join(vbs.dir, 'instances.json'), JSON.stringify({ 'i-0a1b2c3d': { vmmHost: 'localhost', vmId: 'vm2', owner: 'admin' } }));
    const b = await json<{ vmId: string; instanceId: string; status: string }>('attach-volume', vol, 'i-0a1b2c3d', 'xvdb', '--wait');
    expect(b).toMatchObject({ vmId: 'vm2', instanceId: 'i-0a1b2c3d', status: 'attached' });
    await json('detach-volume', vol, '--wait');
  });
});
