import type { Metadata } from '../db/metadata.js';

/**
 * What a create workflow may still take back. Its record is made in the
 * creating state (`creating` volume, `pending` snapshot) and only the
 * workflow's commit moves it on while the workflow runs (the creation
 * monitor holds back what it hears until then). Should a record have moved
 * on anyway (an older front, a repair), a user may have seen it and used it:
 * the create then only goes forward, and its rollback leaves data and record
 * alone rather than take back something shown `available`/`completed`.
 */
export function stillCreating(meta: Metadata, id: string): boolean {
  const status = id.startsWith('snap-') ? meta.snapshot(id)?.status : meta.volume(id)?.status;
  return status === undefined || status === (id.startsWith('snap-') ? 'pending' : 'creating');
}
