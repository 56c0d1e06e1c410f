import type { Record as XmlRecord } from '../soap/xml.js';
import type { Attachment, Quota, Snapshot, Volume, VolumeModification } from './records.js';
import { retryWhenUnavailable, type RetryOptions } from './retry.js';
import type { Caller } from './runtime.js';

export interface CreateVolumeInput {
  readonly size: number;
  readonly comment?: string;
  readonly snapshotId?: string;
  readonly clientToken?: string;
  readonly availabilityZone?: string;
  readonly tag?: readonly TagInput[];
}

/** A tag to put (value: '' when absent), or to delete (value absent: whatever it is). */
export interface TagInput {
  readonly key: string;
  readonly value?: string;
}

export interface ResourceTag {
  readonly resourceId: string;
  readonly resourceType: string;
  readonly key: string;
  readonly value: string;
}

export interface CreateSnapshotInput {
  readonly volumeId: string;
  readonly comment?: string;
  readonly clientToken?: string;
}

/** Either vmmHost and vmId, or instanceId (attach by instance id). */
export interface AttachVolumeInput {
  readonly volumeId: string;
  readonly vmmHost?: string;
  readonly vmId?: string;
  readonly instanceId?: string;
  readonly device: string;
  readonly mode: string;
}

export interface DetachVolumeInput {
  readonly volumeId: string;
  readonly vmmHost?: string;
  readonly vmId?: string;
  readonly instanceId?: string;
  /** Fence the VMM host and release the attachment without asking the host (it does not answer). */
  readonly force?: boolean;
}

/** One filter of a listing: a record matches when any value does. */
export interface ListFilter {
  readonly name: string;
  readonly value: readonly string[];
}

/** What DescribeVolumes and DescribeSnapshots take besides ids. */
export interface PageInput {
  readonly filter?: readonly ListFilter[];
  readonly maxResults?: number;
  readonly nextToken?: string;
}

export interface Page<T> {
  readonly items: T[];
  /** Set while more records remain. */
  readonly nextToken?: string;
}

/** A Describe* request with only the parts that were given (what the front sees is what was asked). */
function listingRequest(ids: Readonly<Record<string, readonly string[] | undefined>>, page: PageInput): XmlRecord {
  const out: XmlRecord = {};
  for (const [name, list] of Object.entries(ids)) if (list?.length) out[name] = [...list];
  if (page.filter?.length) out.filter = page.filter.map((f) => ({ name: f.name, value: [...f.value] }));
  if (page.maxResults !== undefined) out.maxResults = page.maxResults;
  if (page.nextToken !== undefined) out.nextToken = page.nextToken;
  return out;
}

/**
 * The front's eight operations with typed records, and the retry policy: only
 * the calls that cannot do anything twice are repeated when the front is
 * unreachable (Describe*, and creates that carry a client token).
 */
export class VbsApi {
  constructor(
    private readonly caller: Caller,
    private readonly retry: RetryOptions,
  ) {}

  async createVolume(input: CreateVolumeInput): Promise<Volume> {
    const out = await this.callRetryingIf(input.clientToken !== undefined, 'CreateVolume', { ...input, tag: input.tag?.map((t) => ({ ...t })) });
    return out.volume as unknown as Volume;
  }

  async deleteVolume(volumeId: string): Promise<boolean> {
    const out = await this.caller.call('DeleteVolume', { volumeId });
    return out.return === true;
  }

  async describeVolumes(volumeIds: readonly string[] = []): Promise<Volume[]> {
    const out = await this.callRetryingIf(true, 'DescribeVolumes', { volumeId: [...volumeIds] });
    return (out.volume ?? []) as unknown as Volume[];
  }

  /** One page of volumes (or all of them, without maxResults), filtered. */
  async describeVolumesPage(input: PageInput & { readonly volumeId?: readonly string[] }): Promise<Page<Volume>> {
    const out = await this.callRetryingIf(true, 'DescribeVolumes', listingRequest({ volumeId: input.volumeId }, input));
    return { items: (out.volume ?? []) as unknown as Volume[], nextToken: out.nextToken as string | undefined };
  }

  async createSnapshot(input: CreateSnapshotInput): Promise<Snapshot> {
    const out = await this.callRetryingIf(input.clientToken !== undefined, 'CreateSnapshot', { ...input });
    return out.snapshot as unknown as Snapshot;
  }

  async deleteSnapshot(snapshotId: string): Promise<boolean> {
    const out = await this.caller.call('DeleteSnapshot', { snapshotId });
    return out.return === true;
  }

  async describeSnapshots(snapshotIds: readonly string[] = []): Promise<Snapshot[]> {
    const out = await this.callRetryingIf(true, 'DescribeSnapshots', { snapshotId: [...snapshotIds] });
    return (out.snapshot ?? []) as unknown as Snapshot[];
  }

  /** One page of snapshots (or all of them, without maxResults), filtered. */
  async describeSnapshotsPage(input: PageInput & { readonly snapshotId?: readonly string[] }): Promise<Page<Snapshot>> {
    const out = await this.callRetryingIf(true, 'DescribeSnapshots', listingRequest({ snapshotId: input.snapshotId }, input));
    return { items: (out.snapshot ?? []) as unknown as Snapshot[], nextToken: out.nextToken as string | undefined };
  }

  async attachVolume(input: AttachVolumeInput): Promise<Attachment> {
    const out = await this.caller.call('AttachVolume', { ...input });
    return out.attachment as unknown as Attachment;
  }

  async detachVolume(input: DetachVolumeInput): Promise<Attachment> {
    const out = await this.caller.call('DetachVolume', { ...input });
    return out.attachment as unknown as Attachment;
  }

  /** Shares a snapshot with a user (share) or stops sharing it. Repeating either changes nothing, so it may be retried. */
  async shareSnapshot(snapshotId: string, user: string, share: boolean): Promise<boolean> {
    const out = await this.callRetryingIf(true, share ? 'ShareSnapshot' : 'UnshareSnapshot', { snapshotId, user });
    return out.return === true;
  }

  async setQuota(input: {
    readonly user: string;
    readonly volumes?: number;
    readonly gib?: number;
    readonly snapshots?: number;
    readonly snapshotGib?: number;
  }): Promise<Quota> {
    const out = await this.callRetryingIf(true, 'SetQuota', { ...input });
    return out.quota as unknown as Quota;
  }

  async describeQuota(user: string): Promise<Quota> {
    const out = await this.callRetryingIf(true, 'DescribeQuota', { user });
    return out.quota as unknown as Quota;
  }

  /** Tags are set to values (putting one again changes nothing): retried like reads. */
  async createTags(resourceId: readonly string[], tag: readonly TagInput[]): Promise<void> {
    await this.callRetryingIf(true, 'CreateTags', { resourceId: [...resourceId], tag: tag.map((t) => ({ ...t })) });
  }

  async deleteTags(resourceId: readonly string[], tag: readonly TagInput[]): Promise<void> {
    await this.callRetryingIf(true, 'DeleteTags', { resourceId: [...resourceId], tag: tag.map((t) => ({ ...t })) });
  }

  async describeTagsPage(input: PageInput): Promise<Page<ResourceTag>> {
    const out = await this.callRetryingIf(true, 'DescribeTags', listingRequest({}, input));
    return { items: (out.tag ?? []) as unknown as ResourceTag[], nextToken: out.nextToken as string | undefined };
  }

  async describeZones(): Promise<{ zoneName: string; state: string; regionName: string }[]> {
    const out = await this.callRetryingIf(true, 'DescribeAvailabilityZones', {});
    return (out.zone ?? []) as unknown as { zoneName: string; state: string; regionName: string }[];
  }

  /** Grows a volume (never retried on its own: the front refuses a second modification while the first is in flight). */
  async modifyVolume(volumeId: string, size: number): Promise<VolumeModification> {
    const out = await this.caller.call('ModifyVolume', { volumeId, size });
    return out.modification as unknown as VolumeModification;
  }

  /** One page of modifications (each volume's most recent, unless allRequests), filtered. */
  async describeVolumesModificationsPage(input: PageInput & { readonly volumeId?: readonly string[]; readonly allRequests?: boolean }): Promise<Page<VolumeModification>> {
    const request = listingRequest({ volumeId: input.volumeId }, input);
    if (input.allRequests) request.allRequests = true;
    const out = await this.callRetryingIf(true, 'DescribeVolumesModifications', request);
    return { items: (out.modification ?? []) as unknown as VolumeModification[], nextToken: out.nextToken as string | undefined };
  }

  /** The same input object is sent on every attempt: a retried create carries the same token. */
  private callRetryingIf(safe: boolean, operation: string, input: XmlRecord): Promise<XmlRecord> {
    const attempt = (): Promise<XmlRecord> => this.caller.call(operation, input);
    return safe ? retryWhenUnavailable(attempt, this.retry) : attempt();
  }
}
