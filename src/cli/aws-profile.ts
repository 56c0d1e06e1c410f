import { isPostgresUrl } from '../db/postgres.js';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DEFAULT_EC2_PORT, EC2_SECRETS_KEY } from '../deploy/all-in-one.js';
import { AccessKeyStore, newSecret, type AccessKeyRow } from '../db/access-keys.js';
import { openDatabase } from '../db/database.js';
import { DEFAULT_REGION } from '../front/zones.js';
import { ensureSecretsKey, seal } from '../ec2/secrets.js';
import { writeAtomic } from '../pki/store.js';

/**
 * Access keys for the EC2 API, issued on the deployment's data folder (where
 * the front's database and the secrets key are), and the AWS CLI's two files
 * that use one: `credentials` (the key, 0600) and `config` (region, the CA
 * bundle, the endpoint), ready for AWS_SHARED_CREDENTIALS_FILE and
 * AWS_CONFIG_FILE.
 */

export interface DeploymentEc2 {
  readonly database: string;
  readonly secretsKey: string;
  readonly region: string;
  readonly endpoint: string;
}

/** Where a data folder's front keeps its database and secrets key, and its EC2 endpoint (DIR/front.json, else `vbs up`'s defaults). */
export function deploymentEc2(dataDir: string): DeploymentEc2 {
  let front: { database?: string; region?: string; ec2?: { listen?: { host?: string; port?: number }; secretsKey?: string; publicUrl?: string } } = {};
  const file = join(dataDir, 'front.json');
  if (existsSync(file)) front = JSON.parse(readFileSync(file, 'utf8')) as typeof front;
  const listen = front.ec2?.listen;
  return {
    database: front.database && isPostgresUrl(front.database) ? front.database : resolve(dataDir, front.database ?? 'vbs.db'),
    secretsKey: resolve(dataDir, front.ec2?.secretsKey ?? EC2_SECRETS_KEY),
    region: front.region ?? DEFAULT_REGION,
    endpoint: front.ec2?.publicUrl ?? `https://${listen?.host ?? '127.0.0.1'}:${listen?.port ?? DEFAULT_EC2_PORT}/`,
  };
}

/** Runs `act` on the deployment's access keys (the front may be running: the database is shared, WAL). */
export function withKeys<T>(d: DeploymentEc2, act: (keys: AccessKeyStore) => T): T {
  const db = openDatabase(d.database);
  try {
    return act(new AccessKeyStore(db));
  } finally {
    db.close();
  }
}

/** Issues a key pair: the secret is returned here once and stored only sealed. */
export function issueKey(d: DeploymentEc2, user: string, admin: boolean): { row: AccessKeyRow; secret: string } {
  const sealing = ensureSecretsKey(d.secretsKey);
  const secret = newSecret();
  const row = withKeys(d, (keys) => keys.create(user, admin, secret, (id, s) => seal(sealing, id, s)));
  return { row, secret };
}

export interface AwsFiles {
  readonly credentials: string;
  readonly config: string;
}

/** Writes OUT/credentials (0600) and OUT/config for the AWS CLI and boto3, profile `default`. */
export function writeAwsFiles(outDir: string, d: DeploymentEc2, accessKeyId: string, secret: string, caFile: string): AwsFiles {
  mkdirSync(outDir, { recursive: true, mode: 0o700 });
  const files = { credentials: join(outDir, 'credentials'), config: join(outDir, 'config') };
  writeAtomic(files.credentials, `[default]\naws_access_key_id = ${accessKeyId}\naws_secret_access_key = ${secret}\n`, 0o600);
  // endpoint_url is read by AWS CLI 2.13+ and boto3 1.28+; older ones need --endpoint-url (printed by `vbs up`).
  writeAtomic(files.config, `[default]\nregion = ${d.region}\nca_bundle = ${resolve(caFile)}\nendpoint_url = ${d.endpoint}\noutput = json\n`, 0o644);
  return files;
}
