import { VbsError } from '../../core/errors.js';
import { CHAP_SECRET } from '../../core/chap.js';

/** One LUN of an iSCSI target, as an export names it; every field checked. */
export interface IscsiLun {
  /** `a.b.c.d:port`, the port always given (3260 by default). */
  readonly portal: string;
  readonly iqn: string;
  readonly lun: number;
  /** The initiator name the target admits for this host, when it fences hosts (src/core/initiator-name.ts). */
  readonly initiator?: string;
  /** The export's CHAP account, when the target requires CHAP (src/core/chap.ts). The secret is never logged. */
  readonly chap?: { readonly user: string; readonly secret: string };
}

const DEFAULT_PORT = 3260;
const OCTET = '(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])';
// An IPv4 address: udev names the device after the address the session uses
// (ip-<address>:<port>-iscsi-...), so a host name could not be matched to it.
const PORTAL = new RegExp(`^(${OCTET}(?:\\.${OCTET}){3})(?::([0-9]{1,5}))?$`);
// RFC 3720 iqn names, at most 223 bytes; no "/" or spaces, so they fit a path word.
const IQN = /^iqn\.[0-9]{4}-(?:0[1-9]|1[0-2])\.[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::[A-Za-z0-9.:_-]+)?$/;
const MAX_IQN = 223;
const MAX_LUN = 16383;

function invalid(param: string, why: string): VbsError {
  return new VbsError('InvalidParameterValue', `Value for parameter ${param} is invalid: ${why}.`);
}

function missing(param: string): VbsError {
  return new VbsError('MissingParameter', `The request must contain the parameter ${param}.`);
}

export function portal(value: unknown, param = 'source.portal'): string {
  if (value === undefined || value === null || value === '') throw missing(param);
  const m = typeof value === 'string' ? PORTAL.exec(value) : null;
  const port = m?.[2] === undefined ? DEFAULT_PORT : Number(m[2]);
  if (!m || port < 1 || port > 65535) throw invalid(param, 'expected an IPv4 address with an optional port, such as 10.0.0.5:3260');
  return `${m[1]}:${port}`;
}

export function iqn(value: unknown, param = 'source.iqn'): string {
  if (value === undefined || value === null || value === '') throw missing(param);
  if (typeof value !== 'string' || value.length > MAX_IQN || !IQN.test(value)) throw invalid(param, 'expected an iSCSI qualified name (iqn.yyyy-mm.naming-authority:unique)');
  return value;
}

export function lun(value: unknown, param = 'source.lun'): number {
  if (value === undefined || value === null || value === '') throw missing(param);
  const n = typeof value === 'string' && /^[0-9]{1,5}$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > MAX_LUN) throw invalid(param, `expected a LUN from 0 to ${MAX_LUN}`);
  return n;
}

const CHAP_USER = /^[A-Za-z0-9][A-Za-z0-9.:_-]{0,222}$/;

/** chapUser and chapSecret come together or not at all; a fault names the field, never the value. */
function chap(user: unknown, secret: unknown): { user: string; secret: string } | undefined {
  if (user === undefined && secret === undefined) return undefined;
  if (user === undefined) throw missing('source.chapUser');
  if (secret === undefined) throw missing('source.chapSecret');
  if (typeof user !== 'string' || !CHAP_USER.test(user)) throw invalid('source.chapUser', 'expected a CHAP account name');
  if (typeof secret !== 'string' || !CHAP_SECRET.test(secret)) throw invalid('source.chapSecret', 'expected 16 to 128 of A-Z a-z 0-9 _ -');
  return { user, secret };
}

/** The LUN an `{kind: 'iscsi', portal, iqn, lun}` source names. */
export function iscsiLun(source: { portal?: unknown; iqn?: unknown; lun?: unknown; initiator?: unknown; chapUser?: unknown; chapSecret?: unknown }): IscsiLun {
  const base = { portal: portal(source.portal), iqn: iqn(source.iqn), lun: lun(source.lun) };
  const account = chap(source.chapUser, source.chapSecret);
  return {
    ...base,
    ...(source.initiator === undefined ? {} : { initiator: iqn(source.initiator, 'source.initiator') }),
    ...(account ? { chap: account } : {}),
  };
}

/** The runner's values for a LUN's CHAP account: `<chapUser>`, and `<chapSecret>` (delivered off the command line). */
export function chapParams(t: IscsiLun): Record<string, string> {
  return t.chap ? { chapUser: t.chap.user, chapSecret: t.chap.secret } : {};
}

/** Refuses a login the pattern could not make: the target requires CHAP and the pattern does not deliver the secret. */
export function requireChapDelivery(t: IscsiLun, delivers: boolean, key: string): void {
  if (t.chap && !delivers) {
    throw new VbsError('OperationFailed', `The target ${t.iqn} requires CHAP, and this VMM host's ${key} pattern does not deliver <chapSecret> (${key}.stdin or ${key}.env.VAR; see docs/chap.md).`);
  }
}

/** The device udev makes for a logged-in LUN (60-persistent-storage.rules). */
export function byPathDevice(t: IscsiLun): string {
  return `/dev/disk/by-path/ip-${t.portal}-iscsi-${t.iqn}-lun-${t.lun}`;
}
