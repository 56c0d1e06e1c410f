import { describe, expect, it } from 'vitest';
import { VbsError } from '../../../src/core/errors.js';
import { ChangeFeed, MAX_WAITERS } from '../../../src/delegates/volume/changes.js';
import { volumeDelegateHandlers } from '../../../src/delegates/volume/service.js';
import type { VolumeBackend } from '../../../src/delegates/volume/backend.js';
import { silentLogger } from '../../../src/core/log.js';
import type { CallContext } from '../../../src/soap/server.js';

const VOL = (n: number) => `vol-${n.toString(16).padStart(17, '0')}`;

describe('the change feed behind WaitObjects', () => {
  it('answers a first call (no cursor) and a cursor of another run with reset, and later ones with what changed since', () => {
    const feed = new ChangeFeed();
    const first = feed.since(undefined);
    expect(first).toMatchObject({ reset: true, ids: [] });
    feed.record(VOL(1));
    feed.record(VOL(2));
    feed.record(VOL(1));
    const next = feed.since(first.cursor);
    expect(next.reset).toBe(false);
    expect([...next.ids].sort()).toEqual([VOL(1), VOL(2)]);
    expect(feed.since(next.cursor)).toMatchObject({ reset: false, ids: [] });
    // A cursor of another run of the delegate (it restarted: copies in memory were lost), or garbage.
    expect(new ChangeFeed().since(next.cursor).reset).toBe(true);
    expect(feed.since('not-a-cursor').reset).toBe(true);
    expect(feed.since(next.cursor.replace(/:\d+$/, ':99999')).reset).toBe(true);
  });

  it('holds a wait until something changes, and a create waiting for its own object only wakes for it', async () => {
    const feed = new ChangeFeed();
    const cursor = feed.cursor();
    const anyChange = feed.wait(cursor, 20_000);
    const ownOnly = feed.wait(cursor, 20_000, new Set([VOL(2)]));
    let ownDone = false;
    void ownOnly.then(() => (ownDone = true));
    feed.record(VOL(1));
    expect((await anyChange).ids).toEqual([VOL(1)]);
    await Promise.resolve();
    expect(ownDone).toBe(false);
    feed.record(VOL(2));
    expect((await ownOnly).ids).toEqual([VOL(1), VOL(2)]);
  });

  it('answers with nothing at the deadline, bounds its waiters, and lets every waiter go when closed', async () => {
    const feed = new ChangeFeed();
    const cursor = feed.cursor();
    expect(await feed.wait(cursor, 20)).toMatchObject({ reset: false, ids: [] });
    const held = Array.from({ length: MAX_WAITERS }, () => feed.wait(cursor, 20_000));
    await expect(feed.wait(cursor, 20_000)).rejects.toMatchObject({ code: 'ServiceUnavailable' });
    feed.close();
    expect((await Promise.all(held)).every((c) => c.ids.length === 0)).toBe(true);
  });
});

describe('WaitObjects and the quick answer to creates', () => {
  /**
   * A back end with the real feed whose creates finish at once, when the test
   * says, or (`finishAfterFirstLook`) just after the handler first saw them
   * still creating, so the handler has to wait for the feed.
   */
  function backend(finishAtOnce: boolean, finishAfterFirstLook = false) {
    const changes = new ChangeFeed();
    const ready = new Set<string>();
    const finish = (id: string) => {
      ready.add(id);
      changes.record(id);
    };
    const b = {
      type: 'test',
      changes,
      createVolume: async (id: string) => {
        if (finishAtOnce) ready.add(id);
      },
      describe: async (id: string) => {
        const state = ready.has(id) ? 'ready' : 'creating';
        if (state === 'creating' && finishAfterFirstLook) setImmediate(() => finish(id));
        return { id, state };
      },
    } as unknown as VolumeBackend;
    return { handlers: volumeDelegateHandlers(b), finish };
  }
  const ctx = { log: silentLogger } as unknown as CallContext;

  it('a create whose work is done within the call answers ready; one still copying answers creating', async () => {
    expect(await backend(true).handlers.CreateVolume!({ volumeId: VOL(1), sizeGiB: 1 }, ctx)).toMatchObject({ accepted: true, state: 'ready' });
    // Finishing while the call waits: answered ready as soon as the feed says so.
    expect(await backend(false, true).handlers.CreateVolume!({ volumeId: VOL(2), sizeGiB: 1 }, ctx)).toMatchObject({ state: 'ready' });
    // Not finishing within the quick-answer window: answered creating, the copy going on.
    expect(await backend(false).handlers.CreateVolume!({ volumeId: VOL(3), sizeGiB: 1 }, ctx)).toMatchObject({ accepted: true, state: 'creating' });
  });

  it('a create under way whose look fails answers creating, never a fault (the front would drop a record whose data is being made)', async () => {
    const changes = new ChangeFeed();
    let started = false;
    const failingLook = {
      type: 'test',
      changes,
      createVolume: async () => {
        started = true;
      },
      describe: async () => {
        throw new VbsError('OperationFailed', 'volume.lvm.list exited with no code on local.');
      },
    } as unknown as VolumeBackend;
    expect(await volumeDelegateHandlers(failingLook).CreateVolume!({ volumeId: VOL(4), sizeGiB: 1 }, ctx)).toEqual({ accepted: true, state: 'creating' });
    expect(started).toBe(true);
    // A create that could not start is still a fault.
    const refused = { ...failingLook, createVolume: async () => { throw new VbsError('InsufficientCapacity', 'full'); } } as unknown as VolumeBackend;
    await expect(volumeDelegateHandlers(refused).CreateVolume!({ volumeId: VOL(5), sizeGiB: 1 }, ctx)).rejects.toMatchObject({ code: 'InsufficientCapacity' });
  });

  it('WaitObjects answers with the objects that finished after the cursor, as DescribeObjects would describe them', async () => {
    const { handlers, finish } = backend(false);
    const first = await handlers.WaitObjects!({ maxWaitMs: 0 }, ctx);
    expect(first).toMatchObject({ reset: true, object: [] });
    const waiting = handlers.WaitObjects!({ since: first.cursor, maxWaitMs: 20_000 }, ctx);
    finish(VOL(3));
    const r = await waiting;
    expect(r).toMatchObject({ reset: false, object: [{ id: VOL(3), state: 'ready' }] });
    expect(r.cursor).not.toBe(first.cursor);
  });

  it('refuses a wait past its limit or a malformed cursor as the caller’s fault, before waiting', async () => {
    const { handlers } = backend(false);
    for (const input of [{ maxWaitMs: 25_001 }, { maxWaitMs: -1 }, { since: 'x'.repeat(65) }]) {
      const err = await Promise.resolve()
        .then(() => handlers.WaitObjects!(input, ctx))
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(VbsError);
      expect((err as VbsError).code).toBe('InvalidParameterValue');
    }
  });
});
