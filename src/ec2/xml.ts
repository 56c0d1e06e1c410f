import { FAULTS, type FaultCode, type VbsError } from '../core/errors.js';
import { escapeXml, xmlSafe } from '../soap/xml.js';

/** The namespace of every EC2 response (API version 2016-11-15). */
export const EC2_NAMESPACE = 'http://ec2.amazonaws.com/doc/2016-11-15/';
export const EC2_API_VERSION = '2016-11-15';

/**
 * EC2's XML, written directly: small element helpers over escaped text, so a
 * response is what EC2 sends (`<volumeSet><item>...`, lower camel case),
 * whatever our own records call things.
 */
export type Xml = string;

/** An element; undefined or null content: no element at all (EC2 leaves absent fields out). */
export function el(name: string, content: string | number | boolean | Date | Xml[] | undefined | null, raw = false): Xml {
  if (content === undefined || content === null) return '';
  if (Array.isArray(content)) return `<${name}>${content.join('')}</${name}>`;
  const text = content instanceof Date ? content.toISOString() : String(content);
  return `<${name}>${raw ? text : escapeXml(xmlSafe(text))}</${name}>`;
}

/** A list: `<nameSet><item>...</item>...</nameSet>`. */
export function set(name: string, items: readonly Xml[][]): Xml {
  return `<${name}>${items.map((i) => `<item>${i.join('')}</item>`).join('')}</${name}>`;
}

export function response(action: string, requestId: string, body: Xml[]): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${EC2_NAMESPACE}">${el('requestId', requestId)}${body.join('')}</${action}Response>`;
}

/**
 * The HTTP status EC2 answers each of our codes with: the client's faults
 * 400, authentication 401/403, ours 500 and 503 (which SDKs retry).
 */
const STATUS: Partial<Record<FaultCode, number>> = {
  AuthFailure: 401,
  MissingAuthenticationToken: 401,
  SignatureDoesNotMatch: 403,
  UnauthorizedOperation: 403,
  RequestTooLarge: 413,
  DryRunOperation: 412,
  RequestTimeout: 408,
  ServiceUnavailable: 503,
  RequestLimitExceeded: 503,
  InsufficientCapacity: 500,
  InternalError: 500,
  OperationFailed: 500,
};

/**
 * Our codes are EC2's where EC2 has one; the rest are named as EC2 names the
 * same case: QuotaExceeded is EC2's VolumeLimitExceeded / SnapshotLimitExceeded
 * (chosen by the operation), InsufficientCapacity of a volume is
 * InsufficientVolumeCapacity, MalformedRequest is InvalidParameterValue.
 */
export function ec2Code(err: VbsError, action: string): string {
  switch (err.code) {
    case 'QuotaExceeded':
      return action === 'CreateSnapshot' ? 'SnapshotLimitExceeded' : 'VolumeLimitExceeded';
    case 'InsufficientCapacity':
      // EC2's name for a volume's: it says to try another zone or later, as VBS's message does.
      return action === 'CreateVolume' || action === 'ModifyVolume' ? 'InsufficientVolumeCapacity' : 'InsufficientCapacity';
    case 'MalformedRequest':
      return 'InvalidParameterValue';
    case 'OperationFailed':
      return 'InternalError';
    case 'StaleGeneration':
      return 'IncorrectState';
    default:
      return err.code;
  }
}

export function errorStatus(err: VbsError): number {
  return STATUS[err.code] ?? (FAULTS[err.code].by === 'Server' ? 500 : 400);
}

export function errorResponse(code: string, message: string, requestId: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>${el('Code', code)}${el('Message', message)}</Error></Errors>${el('RequestID', requestId)}</Response>`;
}
