import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { SoapClient } from '../../src/soap/client.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { eventually } from './harness.js';
import { watchInvariants } from './invariants.js';
import type { RaceDeployment } from './race-deployment.js';

export type Outcome = { ok: true; value: XmlRecord } | { ok: false; code: string; message: string };

/**
 * Starts every call at once (each on its own client, connections already
 * open) and waits for all of them, keeping each one's result or fault.
 */
export async function race(calls: readonly (() => Promise<XmlRecord>)[]): Promise<Outcome[]> {
  return Promise.all(
    calls.map((call) =>
      call().then(
        (value): Outcome => ({ ok: true, value }),
        (err: { code?: string; message?: string }): Outcome => ({ ok: false, code: String(err.code ?? 'unknown'), message: String(err.message ?? err) }),
      ),
    ),
  );
}

/** A race during which the always-true invariants are sampled; any violation seen fails the test. */
export async function raceChecked(d: RaceDeployment, calls: readonly (() => Promise<XmlRecord>)[]): Promise<Outcome[]> {
  const watch = watchInvariants(d.dir);
  let out: Outcome[];
  try {
    out = await race(calls);
  } finally {
    expect(watch.stop(), 'invariants broken during the race').toEqual([]);
  }
  return out;
}

/** Runs the calls one after another: what a given order must give, with no race (the rounds whose outcome is known). */
export async function inOrder(calls: readonly (() => Promise<XmlRecord>)[]): Promise<Outcome[]> {
  const out: Outcome[] = [];
  for (const call of calls) out.push(...(await race([call])));
  return out;
}

export const successes = (outcomes: readonly Outcome[]) => outcomes.filter((o) => o.ok).length;

/** Every failed outcome has one of `codes` and a message matching `message`. */
export function expectFaults(outcomes: readonly Outcome[], codes: readonly string[], message?: RegExp): void {
  for (const o of outcomes) {
    if (o.ok) continue;
    expect(codes, `unexpected fault ${o.code}: ${o.message}`).toContain(o.code);
    if (message) expect(o.message).toMatch(message);
  }
}

/** `n` clients of `user`, each with its TLS connection already made, so a race starts together. */
export async function clients(d: RaceDeployment, user: string, n: number): Promise<SoapClient[]> {
  const list = Array.from({ length: n }, () => d.soap(user));
  await Promise.all(list.map((c) => c.call('DescribeSnapshots', {})));
  return list;
}

export async function describeVolume(c: SoapClient, id: string): Promise<XmlRecord> {
  return ((await c.call('DescribeVolumes', { volumeId: [id] })).volume as XmlRecord[])[0]!;
}

export async function describeSnapshot(c: SoapClient, id: string): Promise<XmlRecord> {
  return ((await c.call('DescribeSnapshots', { snapshotId: [id] })).snapshot as XmlRecord[])[0]!;
}

/** Waits until the volume leaves `creating`, and returns it. */
export async function settledVolume(c: SoapClient, id: string): Promise<XmlRecord> {
  return eventually(async () => {
    const v = await describeVolume(c, id);
    return v.status === 'creating' ? undefined : v;
  });
}

export async function settledSnapshot(c: SoapClient, id: string): Promise<XmlRecord> {
  return eventually(async () => {
    const s = await describeSnapshot(c, id);
    return s.status === 'pending' ? undefined : s;
  });
}

/** A new available volume of `sizeGiB`. */
export async function newVolume(c: SoapClient, sizeGiB = 1, snapshotId?: string): Promise<string> {
  const r = await c.call('CreateVolume', { size: sizeGiB, ...(snapshotId ? { snapshotId } : {}) });
  const id = String((r.volume as XmlRecord).volumeId);
  expect((await settledVolume(c, id)).status).toBe('available');
  return id;
}

export async function newSnapshot(c: SoapClient, volumeId: string): Promise<string> {
  const r = await c.call('CreateSnapshot', { volumeId });
  const id = String((r.snapshot as XmlRecord).snapshotId);
  expect((await settledSnapshot(c, id)).status).toBe('completed');
  return id;
}

const GiB = 1024 ** 3;
const MARK_AT = [0, GiB - 4096];

/** Writes a recognisable mark at the start and near the end of the first GiB of a stored file. */
export function markData(d: RaceDeployment, id: string, mark: string): void {
  const fd = openSync(join(d.dir, 'volumes', `${id}.img`), 'r+');
  try {
    for (const at of MARK_AT) writeSync(fd, Buffer.from(mark), 0, mark.length, at);
  } finally {
    closeSync(fd);
  }
}

/** Whether a stored file carries the mark at both places (a complete copy). */
export function hasMark(d: RaceDeployment, id: string, mark: string): boolean {
  const fd = openSync(join(d.dir, 'volumes', `${id}.img`), 'r');
  try {
    return MARK_AT.every((at) => {
      const buf = Buffer.alloc(mark.length);
      readSync(fd, buf, 0, mark.length, at);
      return buf.toString() === mark;
    });
  } finally {
    closeSync(fd);
  }
}
