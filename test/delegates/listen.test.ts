import { describe, expect, it } from 'vitest';
import { CommandFailed } from '../../src/commands/runner.js';
import { silentLogger } from '../../src/core/log.js';
import { failureOutcome } from '../../src/core/outcome.js';
import { safeCommandFailures } from '../../src/delegates/listen.js';
import type { CallContext } from '../../src/soap/server.js';
import { faultOf } from '../fault-of.js';

const ctx = { caller: 'vbs-front', requestId: 'r', log: silentLogger } as unknown as CallContext;
const failing = (timedOut: boolean) =>
  safeCommandFailures({ AttachDisk: async () => Promise.reject(new CommandFailed('vmm.sim.attach', ['xm'], { exitCode: timedOut ? undefined : 1, stderr: 'xm: /srv/secret', timedOut })) }, 'h1');

describe("a delegate's host command failure as the front sees it", () => {
  it('a command that exited with an error changed nothing: a refusal, without what the tool printed', async () => {
    const err = await faultOf(failing(false).AttachDisk!({}, ctx) as Promise<unknown>);
    expect(err).toMatchObject({ code: 'OperationFailed', message: 'vmm.sim.attach exited with 1 on h1.' });
    expect(failureOutcome(err)).toBe('refused');
  });

  it('a command that timed out may have acted: an unknown outcome, so the front looks (undoes) before deciding', async () => {
    const err = await faultOf(failing(true).AttachDisk!({}, ctx) as Promise<unknown>);
    expect(err).toMatchObject({ code: 'ServiceUnavailable', message: 'vmm.sim.attach timed out on h1; its outcome is unknown.' });
    expect(failureOutcome(err)).toBe('unknown');
  });
});
