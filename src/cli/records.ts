/**
 * The front's records as the CLI sees them, field names exactly as in the
 * WSDL (src/services/vbs.ts). SoapClient has already checked every response
 * against the service definition, so these are plain views of that data.
 */
export interface Attachment {
  readonly volumeId: string;
  readonly vmmHost: string;
  readonly vmId: string;
  /** The instance the attach named (attach by instance id). */
  readonly instanceId?: string;
  readonly device: string;
  readonly mode: string;
  readonly status: string;
  readonly attachTime: Date;
}

export interface Volume {
  readonly volumeId: string;
  readonly size: number;
  readonly comment: string;
  readonly snapshotId?: string;
  readonly status: string;
  readonly statusMessage?: string;
  readonly createTime: Date;
  readonly owner: string;
  readonly attachments: readonly Attachment[];
}

export interface Snapshot {
  readonly snapshotId: string;
  readonly volumeId: string;
  readonly size: number;
  readonly comment: string;
  readonly status: string;
  readonly statusMessage?: string;
  readonly progress: number;
  readonly createTime: Date;
  readonly owner: string;
}

/** A user's limits and what they hold now (SetQuota, DescribeQuota). */
/** A ModifyVolume request's record (EC2's VolumeModification). */
export interface VolumeModification {
  volumeId: string;
  modificationState: string;
  statusMessage?: string;
  originalSize: number;
  targetSize: number;
  progress: number;
  startTime: string | Date;
  endTime?: string | Date;
}

export interface Quota {
  readonly user: string;
  readonly volumeLimit: number;
  readonly gibLimit: number;
  readonly snapshotLimit: number;
  readonly snapshotGibLimit: number;
  readonly volumes: number;
  readonly gib: number;
  readonly snapshots: number;
  readonly snapshotGib: number;
}

/** The same VM on the same host (host names are case-insensitive; the front lowercases them). */
export function sameAttachment(a: Pick<Attachment, 'vmmHost' | 'vmId'>, b: Pick<Attachment, 'vmmHost' | 'vmId'>): boolean {
  return a.vmId === b.vmId && a.vmmHost.toLowerCase() === b.vmmHost.toLowerCase();
}
