import type { Record as XmlRecord } from '../soap/xml.js';

/** What the front needs of a delegate: one call. Tests substitute their own. */
export interface DelegateClient {
  /** `timeoutMs`: this call's own limit instead of the client's (a long-poll's, longer than its wait). */
  call(operation: string, input: XmlRecord, timeoutMs?: number): Promise<XmlRecord>;
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
