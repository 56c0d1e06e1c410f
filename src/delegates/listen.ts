import type { AddressInfo } from 'node:net';
import { VbsError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { defaultPublicUrl, readTls } from '../config/service-config.js';
import type { ServiceDefinition } from '../soap/schema.js';
import { createSoapServer, type Handlers } from '../soap/server.js';
import type { RunningService } from '../core/service.js';

/** Delegates serve the front only: any other certificate is refused. */
export function onlyCallers(allowed: readonly string[]): (caller: string) => void {
  return (caller) => {
    if (!allowed.includes(caller)) throw new VbsError('UnauthorizedOperation', 'This delegate serves the VBS front only.');
  };
}

/** Starts a delegate's SOAP service on its configured address. */
export async function listenDelegate(
  cfg: { listen: { host: string; port: number }; publicUrl?: string; tls: { key: string; cert: string; ca: string }; allowedCallers: string[] },
  def: ServiceDefinition,
  handlers: Handlers,
  log: Logger,
  onClose: () => void = () => {},
): Promise<RunningService> {
  let url = '';
  const server = createSoapServer({ def, handlers, tls: readTls(cfg.tls), log, publicUrl: () => url, authorize: onlyCallers(cfg.allowedCallers) });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.listen.port, cfg.listen.host, () => resolve());
  });
  url = cfg.publicUrl ?? defaultPublicUrl({ host: cfg.listen.host, port: (server.address() as AddressInfo).port }, def.path);
  log.info(`${def.name} listening`, { url });
  return {
    server,
    url,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      onClose();
    },
  };
}
