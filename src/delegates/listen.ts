import type { AddressInfo } from 'node:net';
import { VbsError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { CommandFailed } from '../commands/runner.js';
import { UnknownOutcome } from '../commands/unknown-outcome.js';
import { defaultPublicUrl, readTls } from '../config/service-config.js';
import type { ServiceDefinition } from '../soap/schema.js';
import { createSoapServer, onlyServices, type Handler, type Handlers } from '../soap/server.js';
import type { RunningService } from '../core/service.js';
import type { StreamRoute } from '../soap/stream-route.js';

/**
 * A host command's failure as the caller sees it: which command, on which
 * host, and how it ended. The command line and everything it printed go to
 * this delegate's log, under the request id, not to the user.
 */
export function safeCommandFailures(handlers: Handlers, host: string): Handlers {
  const wrap =
    (h: Handler): Handler =>
    async (input, ctx) => {
      try {
        return await h(input, ctx);
      } catch (err) {
        const logFailure = (f: CommandFailed) => {
          const { exitCode, signal, stderr, timedOut } = f.result;
          ctx.log.warn('host command failed', { key: f.key, argv: f.argv, exitCode, signal, timedOut, stderr: stderr.slice(-8000) });
        };
        // A step that failed and could not be looked at may have acted: an unknown outcome, never a refusal.
        if (err instanceof UnknownOutcome) {
          err.failures.forEach(logFailure);
          throw new VbsError('ServiceUnavailable', `${err.message.replace(/\.$/, '')} (on ${host}).`);
        }
        if (!(err instanceof CommandFailed)) throw err;
        logFailure(err);
        // A command that timed out (or whose helper ended) may have acted: the caller must look before deciding (an unknown outcome).
        if (err.outcomeUnknown) throw new VbsError('ServiceUnavailable', `${err.key} ${CommandFailed.howItEnded(err.result).replace(/ \(its outcome is unknown\)$/, '')} on ${host}; its outcome is unknown.`);
        throw new VbsError('OperationFailed', `${err.key} ${CommandFailed.howItEnded(err.result)} on ${host}.`);
      }
    };
  return Object.fromEntries(Object.entries(handlers).map(([op, h]) => [op, wrap(h)]));
}

/** Starts a delegate's SOAP service on its configured address; it serves VBS services (the front) only. */
export async function listenDelegate(
  cfg: {
    listen: { host: string; port: number };
    publicUrl?: string;
    tls: { key: string; cert: string; ca: string; crl?: string; maxAnonymousConnections?: number };
    allowedCallers: string[];
    /** The host this delegate runs for, as users know it (a VMM host's name, a volume delegate's). */
    hostName?: string;
    name?: string;
  },
  def: ServiceDefinition,
  handlers: Handlers,
  log: Logger,
  onClose: () => void = () => {},
  /** Streamed operations beside the SOAP ones (a volume delegate's image transfers). */
  streams: readonly StreamRoute[] = [],
): Promise<RunningService> {
  let url = '';
  const host = cfg.hostName ?? cfg.name ?? def.name;
  const server = createSoapServer({
    def,
    handlers: safeCommandFailures(handlers, host),
    tls: readTls(cfg.tls),
    log,
    publicUrl: () => url,
    authorize: onlyServices(cfg.allowedCallers),
    crlFile: cfg.tls.crl,
    maxAnonymousConnections: cfg.tls.maxAnonymousConnections,
    streams,
  });
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
