import { VbsError } from '../core/errors.js';
import * as v from '../core/validate.js';
import type { InstanceResolution } from '../config/service-config.js';
import { instanceId as checkInstanceId } from '../resolver/instance-id.js';
import { ScanResolver, type AssignedVms, type VmmHosts } from '../resolver/scan.js';
import type { InstanceResolver, Placement } from '../resolver/types.js';
import { INSTANCE_RESOLVER_SERVICE } from '../services/instance-resolver.js';
import { SoapClient } from '../soap/client.js';
import type { TlsMaterial } from '../core/service.js';
import type { Record as XmlRecord } from '../soap/xml.js';
import type { DelegateClient } from './delegates.js';
import { RetryingDelegate } from './retry.js';

/** Where an attach goes: the VM, and the instance id it was named by (the EBS form). */
export interface AttachTarget {
  readonly vmmHost: string;
  readonly vmId: string;
  readonly instanceId?: string;
}

/** A resolver of the instance resolver service, asked over mutual TLS. */
class RemoteResolver implements InstanceResolver {
  constructor(
    readonly name: string,
    private readonly service: DelegateClient,
  ) {}

  async resolve(instanceId: string, owner: string, admin = false): Promise<Placement | undefined> {
    const r = await this.service.call('ResolveInstance', { instanceId, owner, resolver: this.name, ...(admin ? { admin } : {}) });
    if (r.found !== true) return undefined;
    return {
      vmmHost: v.hostName(r.vmmHost, 'vmmHost'),
      vmId: v.vmId(r.vmId, 'vmId'),
      state: typeof r.state === 'string' ? r.state : 'unknown',
      running: r.running === true,
      resolver: this.name,
    };
  }
}

const MAX_CACHED = 1_000;

/** A placement found for an administrator (any owner's) is never reused for a user of the same name. */
const cacheKey = (instanceId: string, owner: string, admin: boolean) => `${admin ? 'admin' : 'user'}\0${owner}\0${instanceId}`;

/**
 * Attach by instance id, in the front: which form a request uses, and the
 * resolvers tried in the configured order (`scan` here, the others in the
 * instance resolver service). It runs before the attach is journaled, so a
 * resolver that is down starts nothing; the placement it finds goes into the
 * workflow's data and the attachment row. Running placements are reused for
 * `cacheMs`, and forgotten when an attach to them fails.
 */
export class InstanceLocator {
  private readonly cache = new Map<string, { placement: Placement; until: number }>();

  constructor(
    private readonly resolvers: readonly InstanceResolver[],
    private readonly cacheMs: number,
    private readonly now: () => number = Date.now,
    private readonly closeService: () => void = () => {},
  ) {}

  /** `assigned`: the VMs administrators gave users (the only ones scan finds for a user). */
  static fromConfig(cfg: InstanceResolution, hosts: VmmHosts, tls: TlsMaterial, assigned?: AssignedVms): InstanceLocator {
    const needService = cfg.resolvers.some((r) => r !== 'scan');
    const client =
      needService && cfg.resolverUrl
        ? new RetryingDelegate(new SoapClient({ def: INSTANCE_RESOLVER_SERVICE, url: cfg.resolverUrl, tls, timeoutMs: cfg.timeoutMs }))
        : undefined;
    const resolvers = cfg.resolvers.map((name) => (name === 'scan' ? new ScanResolver(hosts, assigned) : new RemoteResolver(name, client!)));
    return new InstanceLocator(resolvers, cfg.cacheMs, Date.now, () => client?.close());
  }

  /**
   * AttachVolume names an instance, or a host and a VM: exactly one of the
   * two. Checked before anything else is looked at, so hostile values are
   * refused as such.
   */
  attachForm(input: XmlRecord): { vmmHost: string; vmId: string } | { instanceId: string } {
    const byVm = input.vmmHost !== undefined || input.vmId !== undefined;
    if (input.instanceId !== undefined && byVm) {
      throw new VbsError('InvalidParameterCombination', 'Name the instance with instanceId, or the host and VM with vmmHost and vmId, not both.');
    }
    if (input.instanceId === undefined) {
      if (!byVm) throw new VbsError('InvalidParameterCombination', 'AttachVolume needs instanceId, or vmmHost and vmId.');
      return { vmmHost: v.hostName(input.vmmHost), vmId: v.vmId(input.vmId) };
    }
    return { instanceId: checkInstanceId(input.instanceId) };
  }

  /**
   * Where an attach in either form goes: an instance is resolved here, as
   * owner's (any owner's for an administrator). The host + VM form is checked
   * by the caller (Access.vm), not here.
   */
  async attachTarget(form: ReturnType<InstanceLocator['attachForm']>, owner: string, admin = false): Promise<AttachTarget> {
    if (!('instanceId' in form)) return form;
    const p = await this.locate(form.instanceId, owner, admin);
    return { vmmHost: p.vmmHost, vmId: p.vmId, instanceId: form.instanceId };
  }

  /** DetachVolume: instanceId is another way to say which attachment, not to be mixed with vmmHost/vmId. */
  detachInstance(input: XmlRecord): string | undefined {
    if (input.instanceId === undefined) return undefined;
    if (input.vmmHost !== undefined || input.vmId !== undefined) {
      throw new VbsError('InvalidParameterCombination', 'Name the attachment with instanceId, or with vmmHost and vmId, not both.');
    }
    return checkInstanceId(input.instanceId);
  }

  /** The first resolver that knows the instance decides; it must be running. */
  async locate(instanceId: string, owner: string, admin = false): Promise<Placement> {
    const key = cacheKey(instanceId, owner, admin);
    const cached = this.cache.get(key);
    if (cached && cached.until > this.now()) return cached.placement;
    this.cache.delete(key);
    for (const resolver of this.resolvers) {
      const p = await resolver.resolve(instanceId, owner, admin);
      if (!p) continue;
      if (!p.running) {
        throw new VbsError('IncorrectInstanceState', `The instance '${instanceId}' is ${p.state}, not running; volumes attach to running instances only.`);
      }
      if (this.cacheMs > 0) {
        if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
        this.cache.set(key, { placement: p, until: this.now() + this.cacheMs });
      }
      return p;
    }
    throw new VbsError('InvalidInstanceID.NotFound', `The instance ID '${instanceId}' does not exist.`);
  }

  /** After a failed attach: the next one asks the resolvers again. */
  forget(instanceId: string, owner: string): void {
    this.cache.delete(cacheKey(instanceId, owner, false));
    this.cache.delete(cacheKey(instanceId, owner, true));
  }

  close(): void {
    this.closeService();
  }
}
