import { describe, expect, it } from 'vitest';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { attach, checkFront, createVolume, kinds } from './helpers.js';

/**
 * Issue 16 item 9 (the copy-related parts): what the consistency check's
 * repairs may do on their own, and that they decide about an export under
 * the same host lock as the attach and detach workflows.
 */
describe('reconciliation when a delegate comes back', () => {
  it('runs only the safe repairs: a copy the delegate lost is left to the monitor (never marked error), an unneeded export only reported, a lost export of an attached volume put back', async () => {
    const f = checkFront();
    // A clone whose copy went with the delegate's restart: the monitor restarts it.
    const copying = await createVolume(f, 'creating');
    f.storage.objects.delete(copying);
    // An export nobody needs: withdrawing it is an operator's call.
    const spare = await createVolume(f);
    f.storage.exports.add(`${spare}@localhost`);
    // An attached volume whose export the target daemon lost.
    const attached = await createVolume(f);
    await attach(f, attached);
    f.storage.exports.delete(`${attached}@localhost`);

    await f.reconcile();
    expect(f.meta.volume(copying)!.status).toBe('creating');
    expect(f.storage.exports.has(`${spare}@localhost`)).toBe(true);
    expect(f.storage.exports.has(`${attached}@localhost`)).toBe(true);

    // An administrator's --repair still applies them all.
    expect(kinds(await f.check(true))).toEqual([`orphan-export ${spare} @local repaired`, `state-mismatch ${copying} @local repaired`]);
  });
});

describe('export repairs and attach/detach', () => {
  it('withdrawing an unneeded export holds the host lock: an attach that starts meanwhile exports only after the withdrawal', async () => {
    const f = checkFront();
    const vol = await createVolume(f);
    f.storage.exports.add(`${vol}@localhost`);
    expect(kinds(await f.check())).toEqual([`orphan-export ${vol} @local`]);

    // The repair's UnexportVolume is held on the delegate until the attach's export step has started.
    const events: string[] = [];
    const real = f.storage.call.bind(f.storage);
    let release = () => {};
    const held = new Promise<void>((r) => (release = r));
    let sent = () => {};
    const repairSent = new Promise<void>((r) => (sent = r));
    f.storage.call = async (op: string, input: XmlRecord) => {
      if (op === 'UnexportVolume') {
        events.push('unexport sent');
        sent();
        await held;
        const out = await real(op, input);
        events.push('unexport done');
        return out;
      }
      if (op === 'ExportVolume') events.push('export sent');
      return real(op, input);
    };
    // The attach's export step asks for the host's lock (the repair holds it): then the withdrawal may end.
    const locks = f.wf.hostLocks;
    const run = locks.run.bind(locks);
    let asked = 0;
    locks.run = (<T>(key: string, section: () => Promise<T>) => {
      if (++asked === 2) setImmediate(release);
      return run(key, section);
    }) as typeof locks.run;

    const repaired = f.check(true);
    await repairSent;
    await attach(f, vol);
    const r = await repaired;
    // Nothing is exported while the withdrawal is in flight (the repair then sees the attach and leaves the export to it).
    expect(events.slice(0, 3)).toEqual(['unexport sent', 'unexport done', 'export sent']);
    expect(r.finding[0]!.detail).toMatch(/not repaired: it changed while the check ran/);
    expect(f.meta.volume(vol)!.status).toBe('in-use');
    expect(f.storage.exports.has(`${vol}@localhost`)).toBe(true);
  });

  it('restoring a lost export holds the host lock: a detach that starts meanwhile withdraws it only after, so none is left behind', async () => {
    const f = checkFront();
    const vol = await createVolume(f);
    await attach(f, vol);
    f.storage.exports.delete(`${vol}@localhost`);
    expect(kinds(await f.check())).toEqual([`missing-export ${vol}/vm1 @local`]);

    const events: string[] = [];
    const real = f.storage.call.bind(f.storage);
    let release = () => {};
    const held = new Promise<void>((r) => (release = r));
    let sent = () => {};
    const repairSent = new Promise<void>((r) => (sent = r));
    f.storage.call = async (op: string, input: XmlRecord) => {
      if (op === 'ExportVolume') {
        events.push('export sent');
        sent();
        await held;
        const out = await real(op, input);
        events.push('export done');
        return out;
      }
      if (op === 'UnexportVolume') events.push('unexport sent');
      return real(op, input);
    };
    const journal = f.wf.engine.journal;
    const setStep = journal.setStep.bind(journal);
    journal.setStep = (id, idx, name, state, error) => {
      setStep(id, idx, name, state, error);
      // The detach's first step that decides about the host (its logout) has started.
      if (name === 'vmm-delegate.LogoutTarget' && state === 'started') setImmediate(release);
    };

    const repaired = f.check(true);
    await repairSent;
    await f.call('DetachVolume', { volumeId: vol });
    await repaired;
    expect(events).toEqual(['export sent', 'export done', 'unexport sent']);
    expect(f.meta.volume(vol)!.status).toBe('available');
    expect(f.storage.exports.has(`${vol}@localhost`)).toBe(false);
  });
});
