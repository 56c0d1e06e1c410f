import type { Record as XmlRecord } from '../soap/xml.js';

/** What the front needs of a delegate: one call. Tests substitute their own. */
export interface DelegateClient {
  call(operation: string, input: XmlRecord): Promise<XmlRecord>;
}

/** The delegates the front drives, by name: what workflows and the consistency check depend on. */
export interface Delegates {
  volumeDelegateNames(): string[];
  volumeDelegate(name: string): DelegateClient;
  vmmHostNames(): string[];
  hasVmmHost(name: string): boolean;
  /** Throws InvalidHost.NotFound for a host that is not configured. */
  vmmDelegate(host: string): DelegateClient;
}
