import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';

/**
 * How access keys' secrets are kept (issue 18). The server verifies a SigV4
 * signature by computing the same HMAC, so it needs each secret itself, not a
 * hash of it. The database holds each secret sealed with AES-256-GCM under a
 * key kept in a separate file (mode 0600, DIR/pki/ec2-secrets.key in `vbs
 * up`), with the access key id as associated data (a sealed secret copied to
 * another key's row does not open). Someone who reads the database alone
 * cannot sign; they also need that file.
 */

const KEY_BYTES = 32;
const IV_BYTES = 12;
const FORMAT = 'v1';

/** Reads the sealing key, creating it (0600, exclusively: two creators agree on one) when absent. */
export function ensureSecretsKey(file: string): Buffer {
  try {
    const fd = openSync(file, 'wx', 0o600);
    try {
      writeSync(fd, randomBytes(KEY_BYTES).toString('base64') + '\n');
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return readSecretsKey(file);
}

export function readSecretsKey(file: string): Buffer {
  const key = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
  if (key.length !== KEY_BYTES) throw new Error(`${file} does not hold a ${KEY_BYTES}-byte key (base64)`);
  return key;
}

export function seal(key: Buffer, accessKeyId: string, secret: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(accessKeyId));
  const ct = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
  return [FORMAT, iv.toString('base64'), cipher.getAuthTag().toString('base64'), ct.toString('base64')].join(':');
}

/** The secret, or undefined when the sealed text is not one this key sealed for this access key id. */
export function unseal(key: Buffer, accessKeyId: string, sealed: string): string | undefined {
  const [format, iv, tag, ct] = sealed.split(':');
  if (format !== FORMAT || !iv || !tag || ct === undefined) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64'));
    decipher.setAAD(Buffer.from(accessKeyId));
    decipher.setAuthTag(Buffer.from(tag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(ct, 'base64')), decipher.final()]).toString('utf8');
  } catch {
    return undefined;
  }
}
