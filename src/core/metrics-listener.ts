import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from './log.js';
import { addProcessMetrics, registry, scrape } from './metrics.js';
import type { RunningService } from './service.js';

/** Where a service's metrics listener binds (the `metrics` key of every service configuration). */
export interface MetricsListen {
  readonly host: string;
  readonly port: number;
}

/** A scrape that takes longer is answered 503: Prometheus's default scrape timeout is 10 s. */
const SCRAPE_TIMEOUT_MS = 8_000;

/**
 * The Prometheus listener of one service: plain HTTP, GET /metrics only, on
 * its own address (127.0.0.1 by default), apart from the SOAP listener so
 * Prometheus needs no client certificate and users never reach it. What it
 * serves holds no secrets and no unbounded values (src/core/metrics.ts).
 */
export async function serveMetrics(listen: MetricsListen, log: Logger): Promise<{ url: string; close(): Promise<void> }> {
  addProcessMetrics();
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://metrics.invalid').pathname;
    if (path !== '/metrics') return void res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found; metrics are at /metrics\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return void res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('Use GET\n');
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`metrics not collected within ${SCRAPE_TIMEOUT_MS} ms`)), SCRAPE_TIMEOUT_MS);
    });
    Promise.race([scrape(), late])
      .then((text) => res.writeHead(200, { 'content-type': registry.contentType }).end(req.method === 'HEAD' ? undefined : text))
      .catch((err: unknown) => {
        log.warn('collecting metrics failed', { err });
        if (!res.headersSent) res.writeHead(503, { 'content-type': 'text/plain' }).end('Metrics could not be collected; see the service log.\n');
      })
      .finally(() => clearTimeout(timer));
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => resolve());
  });
  const host = listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  const url = `http://${host}:${(server.address() as AddressInfo).port}/metrics`;
  log.info('metrics listening', { url });
  return {
    url,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

/** The service with its metrics listener beside it: the ready line names both, and closing closes both. */
export async function withMetrics(service: RunningService, listen: MetricsListen | undefined, log: Logger): Promise<RunningService> {
  if (!listen) return service;
  let metrics;
  try {
    metrics = await serveMetrics(listen, log);
  } catch (err) {
    await service.close();
    throw new Error(`the metrics listener could not start on ${listen.host}:${listen.port}: ${(err as Error).message}`);
  }
  return {
    ...service,
    metricsUrl: metrics.url,
    close: async () => {
      await metrics.close();
      await service.close();
    },
  };
}
