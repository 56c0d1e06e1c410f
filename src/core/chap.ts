import { randomBytes } from 'node:crypto';

/**
 * Per-export CHAP credentials (issue 17 item 8). Each export of a volume to
 * a VMM host (what that host's attachments of the volume share: one target
 * login) has an account on the volume's target. Its name is made from the
 * volume and the host, so a delegate can find and withdraw it without the
 * secret; the secret is 24 random bytes the front generates, base64url (no
 * ',' or '=', which tgtd's parameter parsing would cut at).
 *
 * Where it lives, and why that is acceptable: in the front's metadata (the
 * attachment's recorded export, and the journal of the workflow that made
 * it), readable only by the service's user, so that recovery, rollback and
 * `vbs admin check --repair` can export again after a crash; in the volume
 * delegate's state folder (0600), so that a restarted target daemon gets the
 * same account back while hosts stay logged in; and in the target daemon and
 * the VMM host that logs in. It is not a user's secret: no user ever sees
 * it, it admits one host to one volume, and it dies with the export.
 */
export const CHAP_SECRET = /^[A-Za-z0-9_-]{16,128}$/;

export function newChapSecret(): string {
  return randomBytes(24).toString('base64url');
}

/** The CHAP account of one volume's export to one host (host names are lowercased, as initiator names are). */
export function chapUserName(volumeId: string, vmmHost: string): string {
  return `${volumeId}.${vmmHost.toLowerCase()}`;
}
