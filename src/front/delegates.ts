import type { DelegateClient, Delegates } from '../core/delegates.js';
import { VbsError } from '../core/errors.js';
import { SoapClient } from '../soap/client.js';
import type { TlsMaterial } from '../core/service.js';
import type { Record as XmlRecord } from '../soap/xml.js';
import { VOLUME_DELEGATE_SERVICE } from '../services/volume-delegate.js';
import { VMM_DELEGATE_SERVICE } from '../services/vmm-delegate.js';
import { RetryingDelegate } from './retry.js';
import { MeteredDelegate } from './metered-delegate.js';

export type { DelegateClient } from '../core/delegates.js';

/**
 * The front's view of its delegates: one mutual-TLS client per volume
 * delegate and per VMM host, by name.
 */
export class DelegatePool implements Delegates {
  constructor(
    private readonly volume: ReadonlyMap<string, DelegateClient>,
    private readonly vmm: ReadonlyMap<string, DelegateClient>,
  ) {}

  static fromConfig(
    cfg: { volumeDelegates: readonly { name: string; url: string }[]; vmmHosts: readonly { name: string; url: string }[]; delegateTimeoutMs: number },
    tls: TlsMaterial,
  ): DelegatePool {
    const make = (def: typeof VOLUME_DELEGATE_SERVICE, kind: 'volume' | 'vmm', list: readonly { name: string; url: string }[]) =>
      new Map<string, DelegateClient>(
        list.map((d) => [
          d.name.toLowerCase(),
          new MeteredDelegate(new RetryingDelegate(new SoapClient({ def, url: d.url, name: `${def.name} ${d.name}`, tls, timeoutMs: cfg.delegateTimeoutMs })), kind, d.name.toLowerCase()),
        ]),
      );
    return new DelegatePool(make(VOLUME_DELEGATE_SERVICE, 'volume', cfg.volumeDelegates), make(VMM_DELEGATE_SERVICE, 'vmm', cfg.vmmHosts));
  }

  vmmHostNames(): string[] {
    return [...this.vmm.keys()];
  }

  volumeDelegateNames(): string[] {
    return [...this.volume.keys()];
  }

  volumeDelegate(name: string): DelegateClient {
    const d = this.volume.get(name);
    if (!d) throw new VbsError('InternalError', `volume delegate ${name} is not configured`);
    return d;
  }

  hasVmmHost(name: string): boolean {
    return this.vmm.has(name);
  }

  vmmDelegate(host: string): DelegateClient {
    const d = this.vmm.get(host);
    if (!d) throw new VbsError('InvalidHost.NotFound', `The VMM host '${host}' is not known to VBS.`);
    return d;
  }

  close(): void {
    for (const c of [...this.volume.values(), ...this.vmm.values()]) (c as { close?: () => void }).close?.();
  }
}
