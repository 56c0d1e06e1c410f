import { randomBytes } from 'node:crypto';
import { now, writeTx, type Db } from './database.js';

export interface AccessKeyRow {
  readonly access_key_id: string;
  readonly user: string;
  /** Whether the user was an administrator when the key was issued. */
  readonly admin: number;
  /** The secret, sealed (src/ec2/secrets.ts): never the secret itself. */
  readonly secret_sealed: string;
  readonly created_at: string;
  readonly revoked_at: string | null;
}

/** An access key id as AWS spells them: AKIA and 16 characters of base32. */
export const ACCESS_KEY_ID = /^AKIA[A-Z2-7]{16}$/;
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
/** A user holds at most this many keys that are not revoked (AWS IAM: 2; a little more room here). */
export const MAX_ACTIVE_KEYS = 5;

export class TooManyKeys extends Error {}

function newAccessKeyId(): string {
  return 'AKIA' + [...randomBytes(16)].map((b) => BASE32[b & 31]).join('');
}

/** A secret access key: 40 characters, as AWS's. */
export function newSecret(): string {
  return randomBytes(30).toString('base64');
}

/**
 * Access keys for the EC2 API (issue 18), in the front's metadata database:
 * the CLI (`vbs admin user keys`) writes them on the data folder while the
 * front runs, and the front reads the row on every request, so a revocation
 * is in force from the next request on.
 */
export class AccessKeyStore {
  constructor(private readonly db: Db) {}

  /** Records a new key; `seal` turns the secret into what is stored. */
  create(user: string, admin: boolean, secret: string, seal: (id: string, secret: string) => string): AccessKeyRow {
    return writeTx(this.db, () => {
      const active = (this.db.prepare('SELECT count(*) AS n FROM access_keys WHERE user = ? AND revoked_at IS NULL').get(user) as { n: number }).n;
      if (active >= MAX_ACTIVE_KEYS) throw new TooManyKeys(`${user} already has ${active} access keys; revoke one first`);
      for (;;) {
        const id = newAccessKeyId();
        if (this.db.prepare('SELECT 1 FROM access_keys WHERE access_key_id = ?').get(id)) continue;
        const row: AccessKeyRow = { access_key_id: id, user, admin: admin ? 1 : 0, secret_sealed: seal(id, secret), created_at: now(), revoked_at: null };
        this.db.prepare('INSERT INTO access_keys (access_key_id, user, admin, secret_sealed, created_at) VALUES (@access_key_id, @user, @admin, @secret_sealed, @created_at)').run(row);
        return row;
      }
    });
  }

  /** A key that is in force; a revoked or unknown one: undefined. */
  active(accessKeyId: string): AccessKeyRow | undefined {
    return this.db.prepare('SELECT * FROM access_keys WHERE access_key_id = ? AND revoked_at IS NULL').get(accessKeyId) as AccessKeyRow | undefined;
  }

  /** A user's keys (every user's when none is named), oldest first. */
  list(user?: string): AccessKeyRow[] {
    return (user === undefined
      ? this.db.prepare('SELECT * FROM access_keys ORDER BY created_at, access_key_id').all()
      : this.db.prepare('SELECT * FROM access_keys WHERE user = ? ORDER BY created_at, access_key_id').all(user)) as AccessKeyRow[];
  }

  /** Revokes one of the user's keys; false when the user has no such key in force. */
  revoke(user: string, accessKeyId: string): boolean {
    return writeTx(this.db, () => this.db.prepare('UPDATE access_keys SET revoked_at = ? WHERE access_key_id = ? AND user = ? AND revoked_at IS NULL').run(now(), accessKeyId, user).changes === 1);
  }

  /** Revokes every key of the user (`vbs admin user revoke`); how many were in force. */
  revokeUser(user: string): number {
    return writeTx(this.db, () => this.db.prepare('UPDATE access_keys SET revoked_at = ? WHERE user = ? AND revoked_at IS NULL').run(now(), user).changes);
  }
}
