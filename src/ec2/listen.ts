import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Ec2Config } from '../config/service-config.js';
import type { Logger } from '../core/log.js';
import type { TlsMaterial } from '../core/service.js';
import { AccessKeyStore } from '../db/access-keys.js';
import type { Db } from '../db/database.js';
import type { Handlers, RequestOutcome } from '../soap/server.js';
import { ensureSecretsKey, unseal } from './secrets.js';
import { createEc2Server } from './server.js';

export interface Ec2Listener {
  readonly server: Server;
  /** https://host:port/ : what `--endpoint-url` is given. */
  readonly url: string;
  close(): Promise<void>;
}

/** Starts the front's EC2 listener: access keys from the front's database, their secrets unsealed with the key file. */
export async function startEc2(cfg: Ec2Config, db: Db, tls: TlsMaterial, handlers: Handlers, region: string, log: Logger, beforeAnswer: (o: RequestOutcome) => void): Promise<Ec2Listener> {
  const sealing = ensureSecretsKey(cfg.secretsKey);
  const keys = new AccessKeyStore(db);
  const server = createEc2Server({
    handlers,
    tls,
    log,
    region,
    devicePrefix: cfg.devicePrefix,
    maxSkewMs: cfg.maxClockSkewSeconds * 1000,
    beforeAnswer,
    keyHolder: (id) => {
      const row = keys.active(id);
      const secret = row ? unseal(sealing, row.access_key_id, row.secret_sealed) : undefined;
      if (row && secret === undefined) log.error('an access key secret does not unseal with the secrets key file', { accessKeyId: id });
      return row && secret !== undefined ? { user: row.user, admin: row.admin === 1, secret } : undefined;
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.listen.port, cfg.listen.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = cfg.listen.host.includes(':') ? `[${cfg.listen.host}]` : cfg.listen.host;
  const url = cfg.publicUrl ?? `https://${host}:${port}/`;
  log.info('EC2 API listening', { url });
  return {
    server,
    url,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
