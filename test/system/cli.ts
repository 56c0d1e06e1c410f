import { expect } from 'vitest';
import type { Vbs } from '../e2e/harness.js';

export interface Volume {
  volumeId: string;
  status: string;
  attachments: { vmId: string; vmmHost: string; mode: string; status: string; device: string }[];
}

/** Runs the vbs CLI with --json and expects success. */
export async function json<T>(vbs: Vbs, ...args: string[]): Promise<T> {
  const r = await vbs.cli('--json', ...args);
  expect(r.stderr.includes('vbs: ') ? r.stderr : '', `vbs ${args.join(' ')}`).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as T;
}

export async function volume(vbs: Vbs, id: string): Promise<Volume> {
  const [v] = await json<Volume[]>(vbs, 'describe-volumes', id);
  return v!;
}
