import { VbsError } from '../core/errors.js';
import type { Delegates } from '../core/delegates.js';

/** The source kind each volume back end exports (GetCapacity's backend). */
const KIND_OF_BACKEND: Record<string, { kind: string; label: string }> = {
  file: { kind: 'file', label: 'a shared file system' },
  'lvm-iscsi': { kind: 'iscsi', label: 'iSCSI' },
  rbd: { kind: 'rbd', label: 'Ceph RBD' },
};

/** How long a VMM host's answer is trusted: its patterns change only when its delegate restarts. */
const HOST_KINDS_TTL_MS = 60_000;

/**
 * Refuses, before anything runs, an attach of a volume whose back end the
 * VMM host cannot attach (an rbd volume on a Xen host, whose patterns have no
 * attach-rbd): the host says what it can (DescribeHost's sourceKinds), the
 * volume delegate what it exports (GetCapacity's backend). Both answers are
 * remembered. When either cannot be had (a delegate down, one too old to
 * say), nothing is refused here: the attach's own steps refuse (the VMM
 * delegate checks the source before it acts) and roll back.
 */
export class Attachability {
  private readonly backends = new Map<string, string>();
  private readonly hostKinds = new Map<string, { kinds: string[]; at: number }>();

  constructor(
    private readonly delegates: Delegates,
    private readonly now: () => number = Date.now,
  ) {}

  async refuseUnattachable(volumeId: string, delegate: string, vmmHost: string): Promise<void> {
    const backend = await this.backendOf(delegate);
    const exported = backend === undefined ? undefined : KIND_OF_BACKEND[backend];
    if (!exported) return;
    const kinds = await this.kindsOf(vmmHost);
    if (kinds && !kinds.includes(exported.kind)) {
      throw new VbsError(
        'InvalidParameterCombination',
        `The volume '${volumeId}' is on ${exported.label}, which the VMM host '${vmmHost}' cannot attach (it attaches ${kinds.length ? kinds.join(', ') : 'nothing'} volumes).`,
      );
    }
  }

  private async backendOf(delegate: string): Promise<string | undefined> {
    const known = this.backends.get(delegate);
    if (known !== undefined) return known;
    try {
      const r = await this.delegates.volumeDelegate(delegate).call('GetCapacity', {});
      if (typeof r.backend === 'string') this.backends.set(delegate, r.backend);
      return typeof r.backend === 'string' ? r.backend : undefined;
    } catch {
      return undefined;
    }
  }

  private async kindsOf(vmmHost: string): Promise<string[] | undefined> {
    const known = this.hostKinds.get(vmmHost);
    if (known && this.now() - known.at < HOST_KINDS_TTL_MS) return known.kinds;
    try {
      const r = await this.delegates.vmmDelegate(vmmHost).call('DescribeHost', {});
      // A delegate from before sourceKinds says nothing: not refused here.
      if (r.sourceKinds === undefined) return undefined;
      const kinds = (Array.isArray(r.sourceKinds) ? r.sourceKinds : [r.sourceKinds]).map(String);
      this.hostKinds.set(vmmHost, { kinds, at: this.now() });
      return kinds;
    } catch {
      return undefined;
    }
  }
}
