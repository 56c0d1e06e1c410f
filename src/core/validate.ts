import { resolve, sep } from 'node:path';
import { VbsError } from './errors.js';
import { SNAPSHOT_ID, VOLUME_ID } from './ids.js';
import { ATTACH_MODES, type AttachMode } from './states.js';
import { NOT_XML_CHAR } from './xml-chars.js';
import { SERVICE_NAME_PREFIX } from '../pki/identity.js';

/** The administrator identity `vbs up` issues itself (DIR/pki/admin.crt, DIR/client.json). */
export const DEPLOYMENT_ADMIN = 'admin';

/**
 * Validators for every value that can reach a host command or the metadata.
 * Each throws a client fault naming the parameter; none echoes a hostile value
 * back in full (it may be huge or contain control characters).
 */

export const MAX_VOLUME_GIB = 16384; // 16 TiB, as EBS
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
// First character alphanumeric, so a VM id can never be read as a command option.
const VM_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const DEVICE = /^(?:\/dev\/)?(?:(?:xvd|sd|hd|vd)[a-z]{1,2}|(?:scsi|virtio|sata|ide)[0-9]{1,2})$/;
const CLIENT_TOKEN = /^[\x21-\x7e]{1,64}$/;
const COMMENT_MAX = 255;
/**
 * Unicode's bidirectional formatting controls (ALM, LRM, RLM, LRE..RLO,
 * LRI..PDI): in a comment shown in a listing or a terminal they reorder what
 * follows, so "gpj.exe" can read as "exe.jpg". Names are ASCII already.
 */
const BIDI_CONTROL = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
/** A user id: it is a certificate's subject CN, a file name in DIR/pki/users and an owner in the metadata. */
export const USER_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/;
const USER_NAME_MAX = 64;

function invalid(param: string, why: string): VbsError {
  return new VbsError('InvalidParameterValue', `Value for parameter ${param} is invalid: ${why}.`);
}

export function requireString(param: string, value: unknown): string {
  if (value === undefined || value === null || value === '') {
    throw new VbsError('MissingParameter', `The request must contain the parameter ${param}.`);
  }
  if (typeof value !== 'string') throw invalid(param, 'expected a string');
  refuseNonXml(param, value);
  return value;
}

/** Every string VBS stores is written back in XML: a character XML 1.0 cannot carry is refused up front. */
function refuseNonXml(param: string, value: string): void {
  if (NOT_XML_CHAR.test(value)) throw invalid(param, 'it holds a character XML 1.0 does not allow');
}

export function volumeId(value: unknown, param = 'volumeId'): string {
  const v = requireString(param, value);
  if (!VOLUME_ID.test(v)) throw invalid(param, 'expected vol- followed by 17 lowercase hex characters');
  return v;
}

export function snapshotId(value: unknown, param = 'snapshotId'): string {
  const v = requireString(param, value);
  if (!SNAPSHOT_ID.test(v)) throw invalid(param, 'expected snap- followed by 17 lowercase hex characters');
  return v;
}

export function sizeGiB(value: unknown, param = 'size'): number {
  if (value === undefined || value === null || value === '') {
    throw new VbsError('MissingParameter', `The request must contain the parameter ${param}.`);
  }
  const n = typeof value === 'string' && /^[0-9]{1,6}$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_VOLUME_GIB) {
    throw invalid(param, `expected a whole number of GiB from 1 to ${MAX_VOLUME_GIB}`);
  }
  return n;
}

export function comment(value: unknown, param = 'comment'): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw invalid(param, 'expected a string');
  if (value.length > COMMENT_MAX) throw invalid(param, `at most ${COMMENT_MAX} characters`);
  refuseNonXml(param, value);
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(value)) throw invalid(param, 'control characters are not allowed');
  if (BIDI_CONTROL.test(value)) throw invalid(param, "Unicode's bidirectional controls (such as U+202E) are not allowed");
  return value;
}

/**
 * A user's name: a certificate's common name (users live in the CA, not the
 * metadata). Letters, digits and `_ . @ -` only, first a letter or digit, at
 * most 64 characters: nothing a certificate subject or a file name gives a
 * meaning to (no `/`, `,`, `=`, `+`, quotes, spaces or control characters).
 * `vbs-` names belong to services and are nobody's.
 */
export function userName(value: unknown, param = 'user'): string {
  const v = requireString(param, value);
  if (v.length > USER_NAME_MAX) throw invalid(param, `at most ${USER_NAME_MAX} characters`);
  if (!USER_NAME_PATTERN.test(v)) throw invalid(param, 'expected letters, digits, "_", ".", "@" or "-", starting with a letter or digit');
  if (v.toLowerCase().startsWith(SERVICE_NAME_PREFIX)) throw invalid(param, `names starting with ${SERVICE_NAME_PREFIX} are reserved for VBS services`);
  return v;
}

/** A name `vbs admin user add` may register: a user name other than `admin`, the deployment's own administrator identity. */
export function registrableUserName(value: unknown, param = 'name'): string {
  const v = userName(value, param);
  if (v.toLowerCase() === DEPLOYMENT_ADMIN) throw invalid(param, `${DEPLOYMENT_ADMIN} is the deployment's own administrator identity (DIR/pki/admin.crt)`);
  return v;
}

export function hostName(value: unknown, param = 'vmmHost'): string {
  const v = requireString(param, value);
  if (!HOST_NAME.test(v)) throw invalid(param, 'expected a host name');
  return v.toLowerCase();
}

export function vmId(value: unknown, param = 'vmId'): string {
  const v = requireString(param, value);
  if (!VM_ID.test(v)) throw invalid(param, 'expected 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit');
  return v;
}

export function device(value: unknown, param = 'device'): string {
  const v = requireString(param, value);
  if (!DEVICE.test(v)) throw invalid(param, 'expected a device such as xvdb, sdf, /dev/vdc or scsi1');
  return v;
}

/** The device name as hypervisors take it: without /dev/. */
export function bareDevice(dev: string): string {
  return dev.startsWith('/dev/') ? dev.slice('/dev/'.length) : dev;
}

export function attachMode(value: unknown, param = 'mode'): AttachMode {
  if (value === undefined || value === null || value === '') return 'w';
  if (typeof value !== 'string' || !(ATTACH_MODES as readonly string[]).includes(value)) {
    throw invalid(param, 'expected r or w');
  }
  return value as AttachMode;
}

export function clientToken(value: unknown, param = 'clientToken'): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value === 'string') refuseNonXml(param, value);
  if (typeof value !== 'string' || !CLIENT_TOKEN.test(value)) {
    throw invalid(param, 'expected 1-64 printable ASCII characters');
  }
  return value;
}

/** A quota limit: a whole number from 0 (nothing allowed) up. */
export function limit(value: unknown, param: string): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const n = typeof value === 'string' && /^[0-9]{1,9}$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 1_000_000_000) throw invalid(param, 'expected a whole number from 0 to 1000000000');
  return n;
}

/**
 * An absolute path that must stay inside `root` once resolved: the guard
 * against `../` reaching a host command.
 */
export function pathUnder(root: string, value: unknown, param = 'path'): string {
  const v = requireString(param, value);
  if (v.includes('\0')) throw invalid(param, 'NUL characters are not allowed');
  const base = resolve(root);
  const full = resolve(base, v);
  if (full !== base && !full.startsWith(base + sep)) throw invalid(param, 'the path leaves its root folder');
  return full;
}

/** EC2's tag limits: keys 1-128 characters, values 0-256, `aws:` reserved, 50 tags a resource. */
export const MAX_TAG_KEY = 128;
export const MAX_TAG_VALUE = 256;
export const MAX_TAGS_PER_RESOURCE = 50;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;

export function tagKey(value: unknown, param = 'tag key'): string {
  const v = requireString(param, value);
  if (v.length > MAX_TAG_KEY) throw invalid(param, `at most ${MAX_TAG_KEY} characters`);
  if (CONTROL.test(v) || BIDI_CONTROL.test(v)) throw invalid(param, 'it holds a control character');
  if (v.toLowerCase().startsWith('aws:')) throw invalid(param, 'keys starting with aws: are reserved');
  return v;
}

export function tagValue(value: unknown, param = 'tag value'): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw invalid(param, 'expected a string');
  refuseNonXml(param, value);
  if (value.length > MAX_TAG_VALUE) throw invalid(param, `at most ${MAX_TAG_VALUE} characters`);
  if (CONTROL.test(value) || BIDI_CONTROL.test(value)) throw invalid(param, 'it holds a control character');
  return value;
}

/** A volume or snapshot id: what tags are put on. */
export function resourceId(value: unknown, param = 'resourceId'): string {
  const v = requireString(param, value);
  if (VOLUME_ID.test(v) || SNAPSHOT_ID.test(v)) return v;
  throw invalid(param, 'expected a volume (vol-…) or snapshot (snap-…) id');
}

/** An availability zone's name, as the front's configuration spells them. */
export function zoneName(value: unknown, param = 'availabilityZone'): string {
  const v = requireString(param, value);
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(v)) throw invalid(param, 'expected a zone name such as vbs-1a');
  return v;
}

/** An image format an import takes (qemu-img's names); raw when absent. */
export function imageFormat(value: unknown, param = 'format'): 'raw' | 'qcow2' | 'vmdk' | 'vdi' {
  if (value === undefined || value === null || value === '') return 'raw';
  if (value === 'raw' || value === 'qcow2' || value === 'vmdk' || value === 'vdi') return value;
  throw new VbsError('InvalidParameterValue', `Value for parameter ${param} is invalid: expected raw, qcow2, vmdk or vdi.`);
}

/** A format an export writes: raw when absent. */
export function exportFormat(value: unknown, param = 'format'): 'raw' | 'qcow2' {
  if (value === undefined || value === null || value === '') return 'raw';
  if (value === 'raw' || value === 'qcow2') return value;
  throw new VbsError('InvalidParameterValue', `Value for parameter ${param} is invalid: expected raw or qcow2.`);
}

/** A SHA-256 as 64 hex digits (either case; kept lower-case), or undefined when absent. */
export function sha256(value: unknown, param = 'sha256'): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string' || !/^[0-9a-fA-F]{64}$/.test(value)) throw new VbsError('InvalidParameterValue', `Value for parameter ${param} is invalid: expected 64 hexadecimal digits.`);
  return value.toLowerCase();
}

/** A byte count (a Content-Length, a limit): a whole number from 0, or undefined when absent. */
export function byteCount(value: unknown, param: string): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const s = String(value);
  const n = Number(s);
  if (!/^[0-9]{1,16}$/.test(s) || !Number.isSafeInteger(n)) throw new VbsError('InvalidParameterValue', `Value for parameter ${param} is invalid: expected a whole number of bytes.`);
  return n;
}
