import type { Server } from 'node:https';

/** The PEM files a service or client presents and trusts (VBS's own CA). */
export interface TlsMaterial {
  readonly key: string | Buffer;
  readonly cert: string | Buffer;
  readonly ca: string | Buffer;
}

/** A started VBS service (front, delegate): where it listens and how to stop it. */
export interface RunningService {
  readonly server: Server;
  readonly url: string;
  /** Its Prometheus listener, when it has one (the `metrics` configuration key). */
  readonly metricsUrl?: string;
  close(): Promise<void>;
}
