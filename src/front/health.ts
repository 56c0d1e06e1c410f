import { errorMessage } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { DelegatePool } from './delegates.js';
import { delegateProbed } from '../core/metrics.js';

type Target = { readonly kind: 'volume-delegate' | 'vmm-host'; readonly name: string };

/**
 * Probes every delegate at a steady pace and notices when one goes away and
 * when it comes back. Coming back is when work that waited on it is done at
 * once (undo leftovers, copies to restart, a consistency pass) instead of at
 * the next backoff.
 */
export class DelegateHealth {
  private timer: NodeJS.Timeout | undefined;
  private readonly down = new Set<string>();
  /** Targets whose return is being reconciled: one reconcile at a time each. */
  private readonly returning = new Map<string, Promise<void>>();
  private probing = false;

  constructor(
    private readonly delegates: DelegatePool,
    private readonly log: Logger,
    private readonly intervalMs: number,
    private readonly onReturn: (target: Target) => Promise<void>,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.probeOnce(), this.intervalMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Whether the volume delegate did not answer its last probe (availability zones' state, src/front/zones.ts). */
  volumeDelegateDown(name: string): boolean {
    return this.down.has(`volume-delegate:${name}`);
  }

  /** The delegates that did not answer the last probe, as `kind:name`. */
  unreachable(): string[] {
    return [...this.down].sort();
  }

  /**
   * Probes these volume delegates now (a create about to be refused on the
   * last probe's answer looks again first). A return found here is reconciled
   * in the background: the create waits for an answer, not for a pass over
   * the whole deployment.
   */
  async recheckVolumeDelegates(names: readonly string[]): Promise<void> {
    await Promise.all(names.map((name) => this.probe({ kind: 'volume-delegate', name }, false)));
  }

  async probeOnce(): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    try {
      const targets: Target[] = [
        ...this.delegates.volumeDelegateNames().map((name) => ({ kind: 'volume-delegate' as const, name })),
        ...this.delegates.vmmHostNames().map((name) => ({ kind: 'vmm-host' as const, name })),
      ];
      await Promise.all(targets.map((t) => this.probe(t)));
    } finally {
      this.probing = false;
    }
  }

  /** Probes one target; when it is back, its reconcile is started, and awaited when `awaitReturn`. */
  private async probe(t: Target, awaitReturn = true): Promise<void> {
    const key = `${t.kind}:${t.name}`;
    try {
      // A wait of 0 ms reads only the delegate's change cursor: unlike GetCapacity (lvs and vgs on
      // lvm-iscsi), a probe every few seconds costs the same however many volumes the node holds.
      if (t.kind === 'volume-delegate') await this.delegates.volumeDelegate(t.name).call('WaitObjects', { maxWaitMs: 0 });
      else await this.delegates.vmmDelegate(t.name).call('DescribeHost', {});
    } catch (err) {
      delegateProbed(t.kind === 'vmm-host' ? 'vmm' : 'volume', t.name, false);
      if (!this.down.has(key)) this.log.warn('delegate unreachable', { delegate: key, message: errorMessage(err) });
      this.down.add(key);
      return;
    }
    delegateProbed(t.kind === 'vmm-host' ? 'vmm' : 'volume', t.name, true);
    if (!this.down.delete(key)) return;
    const reconciling = this.returning.get(key) ?? this.reconcile(t, key);
    if (awaitReturn) await reconciling;
  }

  private reconcile(t: Target, key: string): Promise<void> {
    this.log.info('delegate is back; reconciling', { delegate: key });
    const done = this.onReturn(t)
      .catch((err: unknown) => this.log.error('reconciling a returning delegate failed', { delegate: key, err }))
      .finally(() => this.returning.delete(key));
    this.returning.set(key, done);
    return done;
  }
}
