import { describe, expect, it } from 'vitest';
import { attachment, fault, FakeFront, fakeRuntime, rec, run, VOL } from './fakes.js';

/** The EBS form of attach-volume (three arguments) and detach by instance id. */
describe('attach and detach by instance id', () => {
  it('three arguments name an instance: instanceId is sent, not vmmHost/vmId', async () => {
    const front = new FakeFront({
      AttachVolume: () => rec({ attachment: attachment({ vmmHost: 'node2', vmId: 'wrksp-7', instanceId: 'i-0a1b2c3d', status: 'attaching' }) }),
    });
    const runtime = fakeRuntime(front);
    expect(await run(runtime, 'attach-volume', VOL, 'i-0a1b2c3d', 'xvdb', '--mode', 'r')).toBe(0);
    expect(front.calls[0]!.input).toEqual({ volumeId: VOL, instanceId: 'i-0a1b2c3d', device: 'xvdb', mode: 'r' });
    const row = runtime.stdout.text.trimEnd().split('\n')[1]!.split(/\s+/);
    expect(row.slice(0, 3)).toEqual([VOL, 'wrksp-7', 'node2']);
    expect(row.at(-1)).toBe('i-0a1b2c3d');
  });

  it('four arguments keep the host and VM form', async () => {
    const front = new FakeFront({ AttachVolume: () => rec({ attachment: attachment() }) });
    expect(await run(fakeRuntime(front), 'attach-volume', VOL, 'localhost', 'vm1', 'xvdb')).toBe(0);
    expect(front.calls[0]!.input).toEqual({ volumeId: VOL, vmmHost: 'localhost', vmId: 'vm1', device: 'xvdb', mode: 'w' });
  });

  it('refuses a malformed instance id or device before any call', async () => {
    for (const args of [['attach-volume', VOL, 'i-0a1b;rm', 'xvdb'], ['attach-volume', VOL, 'i-0a1b2c3d', 'floppy'], ['detach-volume', VOL, '--instance-id', 'a/b']]) {
      const front = new FakeFront();
      const runtime = fakeRuntime(front);
      expect(await run(runtime, ...args)).toBe(2);
      expect(runtime.stderr.text).toMatch(/^vbs: InvalidParameterValue: Value for parameter (instanceId|device) is invalid/);
      expect(front.calls).toEqual([]);
    }
  });

  it('detach-volume --instance-id names the attachment', async () => {
    const front = new FakeFront({ DetachVolume: () => rec({ attachment: attachment({ instanceId: 'i-0a1b2c3d', status: 'detaching' }) }) });
    expect(await run(fakeRuntime(front), 'detach-volume', VOL, '--instance-id', 'i-0a1b2c3d')).toBe(0);
    expect(front.calls[0]!.input).toEqual({ volumeId: VOL, instanceId: 'i-0a1b2c3d' });
  });

  it('shows the instance fault codes as they come', async () => {
    for (const code of ['InvalidInstanceID.NotFound', 'IncorrectInstanceState', 'InvalidParameterCombination'] as const) {
      const front = new FakeFront({
        AttachVolume: () => {
          throw fault(code, 'because');
        },
      });
      const runtime = fakeRuntime(front);
      expect(await run(runtime, 'attach-volume', VOL, 'i-0a1b2c3d', 'xvdb')).toBe(1);
      expect(runtime.stderr.text).toBe(`vbs: ${code}: because\n`);
    }
  });
});
