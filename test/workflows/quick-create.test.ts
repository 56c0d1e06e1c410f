import { beforeAll, describe, expect, it } from 'vitest';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { availableVolume, FakeDelegate, makeFront, useEngine } from './fakes.js';
import { ENGINES } from '../setup/engines.js';

/** A volume delegate that answers creates with the state it reached within the call, as the real one does. */
class AnsweringDelegate extends FakeDelegate {
  constructor(private readonly answer: XmlRecord) {
    super();
  }

  override async call(op: string, i: XmlRecord): Promise<XmlRecord> {
    const r = await super.call(op, i);
    return op === 'CreateVolume' || op === 'CreateSnapshot' ? { ...r, ...this.answer } : r;
  }
}

describe.each(ENGINES)('on %s', (engine) => {
  beforeAll(() => useEngine(engine));

  describe('a create the delegate finished within its call', () => {
    it('is available (completed) in the answer, with no monitor involved', async () => {
      const f = makeFront(':memory:', new AnsweringDelegate({ state: 'ready' }));
      const vol = (await f.call('CreateVolume', { size: 1 })).volume as XmlRecord;
      expect(vol.status).toBe('available');
      const snap = (await f.call('CreateSnapshot', { volumeId: vol.volumeId })).snapshot as XmlRecord;
      expect(snap).toMatchObject({ status: 'completed', progress: 100 });
    });

    it('a create that failed at once is in error with the delegate’s message; one still copying stays creating', async () => {
      const failed = makeFront(':memory:', new AnsweringDelegate({ state: 'error', message: 'fallocate exited with 1 on local.' }));
      expect((await failed.call('CreateVolume', { size: 1 })).volume).toMatchObject({ status: 'error', statusMessage: 'fallocate exited with 1 on local.' });
      const copying = makeFront(':memory:', new AnsweringDelegate({ state: 'creating' }));
      expect(((await copying.call('CreateVolume', { size: 1 })).volume as XmlRecord).status).toBe('creating');
      const vol = await availableVolume(copying);
      expect(((await copying.call('CreateSnapshot', { volumeId: vol })).snapshot as XmlRecord).status).toBe('pending');
    });

    it('an older delegate that answers only `accepted` leaves the create to the monitor', async () => {
      const f = makeFront();
      expect(((await f.call('CreateVolume', { size: 1 })).volume as XmlRecord).status).toBe('creating');
    });
  });
});
