import { VbsError } from '../../core/errors.js';

/** One LUN of an iSCSI target, as an export names it; every field checked. */
export interface IscsiLun {
  /** `a.b.c.d:port`, the port always given (3260 by default). */
  readonly portal: string;
  readonly iqn: string;
  readonly lun: number;
  /** The initiator name the target admits for this host, when it fences hosts (src/core/initiator-name.ts). */
  readonly initiator?: string;
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

/** The LUN an `{kind: 'iscsi', portal, iqn, lun}` source names. */
export function iscsiLun(source: { portal?: unknown; iqn?: unknown; lun?: unknown; initiator?: unknown }): IscsiLun {
  const base = { portal: portal(source.portal), iqn: iqn(source.iqn), lun: lun(source.lun) };
  return source.initiator === undefined ? base : { ...base, initiator: iqn(source.initiator, 'source.initiator') };
}

/** The device udev makes for a logged-in LUN (60-persistent-storage.rules). */
export function byPathDevice(t: IscsiLun): string {
  return `/dev/disk/by-path/ip-${t.portal}-iscsi-${t.iqn}-lun-${t.lun}`;
}
