import { VbsError, type FaultCode } from '../../src/core/errors.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { runCli } from '../../src/cli/run.js';
import type { Caller, CliRuntime, OutputStream } from '../../src/cli/runtime.js';
import type { Attachment, Snapshot, Volume } from '../../src/cli/records.js';

/** Collects what a command writes. */
export class Capture implements OutputStream {
  text = '';
  constructor(readonly isTTY = false) {}
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
}

export type Handler = (input: XmlRecord) => XmlRecord | Promise<XmlRecord>;

/** Stands in for SoapClient: records every call and answers from `handlers`. */
export class FakeFront implements Caller {
  readonly calls: { operation: string; input: XmlRecord }[] = [];
  closed = 0;
  constructor(readonly handlers: Partial<Record<string, Handler>> = {}) {}

  async call(operation: string, input: XmlRecord): Promise<XmlRecord> {
    this.calls.push({ operation, input });
    const handler = this.handlers[operation];
    if (!handler) throw new Error(`FakeFront: unexpected call ${operation}`);
    return handler(input);
  }

  close(): void {
    this.closed++;
  }

  operations(): string[] {
    return this.calls.map((c) => c.operation);
  }
}

export interface FakeRuntime extends CliRuntime {
  readonly stdout: Capture;
  readonly stderr: Capture;
  /** Config files `connect` was asked to open, in order. */
  readonly connected: string[];
  /** Every sleep, in ms; sleeping advances the fake clock. */
  readonly slept: number[];
}

export function fakeRuntime(front: Caller, over: Partial<CliRuntime> = {}): FakeRuntime {
  let clock = 1_000_000;
  const connected: string[] = [];
  const slept: number[] = [];
  return {
    stdout: new Capture(),
    stderr: new Capture(),
    env: { VBS_CONFIG: '/etc/vbs/client.json' },
    cwd: '/home/alice',
    fileExists: () => false,
    connect: (_def, file) => {
      connected.push(file);
      return front;
    },
    sleep: async (ms) => {
      slept.push(ms);
      clock += ms;
    },
    now: () => clock,
    newClientToken: () => 'token-1',
    ...over,
    connected,
    slept,
  } as FakeRuntime;
}

export async function run(runtime: CliRuntime, ...args: string[]): Promise<number> {
  return runCli(['node', 'vbs', ...args], runtime);
}

export function fault(code: FaultCode, message = `${code} happened.`): VbsError {
  return new VbsError(code, message);
}

export const VOL = 'vol-0123456789abcdef0';
export const VOL2 = 'vol-00000000000000001';
export const SNAP = 'snap-0123456789abcdef0';
export const T0 = new Date('2026-03-01T10:20:30.456Z');

export function volume(over: Partial<Volume> = {}): Volume {
  return { volumeId: VOL, size: 5, comment: 'data', status: 'available', createTime: T0, owner: 'alice', attachments: [], ...over };
}

export function snapshot(over: Partial<Snapshot> = {}): Snapshot {
  return { snapshotId: SNAP, volumeId: VOL, size: 5, comment: 'nightly', status: 'completed', progress: 100, createTime: T0, owner: 'alice', ...over };
}

export function attachment(over: Partial<Attachment> = {}): Attachment {
  return { volumeId: VOL, vmmHost: 'localhost', vmId: 'vm1', device: 'xvdb', mode: 'w', status: 'attached', attachTime: T0, ...over };
}

/** Records are plain data for the fake transport. */
export function rec(value: object): XmlRecord {
  return value as unknown as XmlRecord;
}
