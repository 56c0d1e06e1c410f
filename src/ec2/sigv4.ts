import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { SignatureV4 } from '@smithy/signature-v4';
import { VbsError } from '../core/errors.js';

/**
 * Verifying AWS Signature Version 4 on EC2 requests (issue 18), in both
 * forms: the Authorization header (what the AWS CLI and boto3 send) and the
 * query string (X-Amz-Algorithm, X-Amz-Credential, ... : a presigned URL).
 * The signature is recomputed by AWS's own signer (@smithy/signature-v4)
 * over exactly the headers the client signed, with the secret of the access
 * key it names, and compared in constant time. A request more than
 * `maxSkewMs` from the server's clock, or a presigned one past its
 * X-Amz-Expires, is RequestExpired.
 */

export interface SignedRequest {
  readonly method: string;
  /** The path as received (not decoded), without the query. */
  readonly path: string;
  /** The query's parameters, decoded, each name with its values in order. */
  readonly query: ReadonlyMap<string, readonly string[]>;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

export interface VerifyOptions {
  readonly region: string;
  readonly now: Date;
  readonly maxSkewMs: number;
  /** The secret of an access key in force; undefined for an unknown or revoked key. */
  readonly secretOf: (accessKeyId: string) => string | undefined;
}

export interface Verified {
  readonly accessKeyId: string;
  /** The signature: what replays are recognized by. */
  readonly signature: string;
  /** When the request stops being acceptable (its replay need not be remembered after). */
  readonly validUntil: number;
}

const ALGORITHM = 'AWS4-HMAC-SHA256';
const SERVICE = 'ec2';
const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;
const MAX_PRESIGNED_SECONDS = 7 * 24 * 3600;

/** The parts of a signature, from either form. */
interface Parts {
  readonly accessKeyId: string;
  readonly scopeDate: string;
  readonly region: string;
  readonly service: string;
  readonly signedHeaders: readonly string[];
  readonly signature: string;
  readonly amzDate: string;
  /** Query form only: seconds the signature is good for, when X-Amz-Expires says. */
  readonly expires?: number;
  /** Signed in the query string (X-Amz-Date there, not among the signed headers). */
  readonly queryForm?: boolean;
}

export async function verifySigV4(req: SignedRequest, opts: VerifyOptions): Promise<Verified> {
  const parts = signatureParts(req);
  const signingDate = parseAmzDate(parts.amzDate);
  const now = opts.now.getTime();
  if (parts.expires !== undefined) {
    if (signingDate.getTime() - now > opts.maxSkewMs) throw expired(parts.amzDate, opts.now);
    if (now > signingDate.getTime() + parts.expires * 1000) throw new VbsError('RequestExpired', `Request has expired: it was signed at ${parts.amzDate} for ${parts.expires} seconds.`);
  } else if (Math.abs(now - signingDate.getTime()) > opts.maxSkewMs) {
    throw expired(parts.amzDate, opts.now);
  }
  if (parts.scopeDate !== parts.amzDate.slice(0, 8)) throw incomplete(`the credential's date ${parts.scopeDate} is not the day of X-Amz-Date ${parts.amzDate}`);
  if (parts.service !== SERVICE) throw incomplete(`the credential is scoped to the service ${parts.service}, not ${SERVICE}`);
  if (parts.region !== opts.region) {
    throw new VbsError('AuthFailure', `The credential is scoped to the region ${parts.region}; this endpoint is the region ${opts.region}.`);
  }
  if (!parts.signedHeaders.includes('host')) throw incomplete('the signed headers must include host');
  if (!parts.queryForm && !parts.signedHeaders.includes('x-amz-date')) throw incomplete('the signed headers must include x-amz-date');
  for (const h of parts.signedHeaders) if (req.headers[h] === undefined) throw incomplete(`the signed header ${h} is not in the request`);
  const claimed = req.headers['x-amz-content-sha256'];
  if (claimed !== undefined && claimed !== createHash('sha256').update(req.body).digest('hex')) {
    throw new VbsError('SignatureDoesNotMatch', 'The x-amz-content-sha256 header is not the hash of the body; the body must be signed.');
  }
  const secret = opts.secretOf(parts.accessKeyId);
  if (secret === undefined) throw new VbsError('AuthFailure', 'AWS was not able to validate the provided access credentials.');

  const expected = await expectedSignature(req, parts, secret, signingDate);
  const given = Buffer.from(parts.signature, 'hex');
  const wanted = Buffer.from(expected, 'hex');
  if (given.length !== wanted.length || !timingSafeEqual(given, wanted)) {
    throw new VbsError(
      'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.',
    );
  }
  const validUntil = parts.expires !== undefined ? signingDate.getTime() + parts.expires * 1000 : signingDate.getTime() + opts.maxSkewMs;
  return { accessKeyId: parts.accessKeyId, signature: parts.signature, validUntil };
}

function expired(amzDate: string, now: Date): VbsError {
  return new VbsError('RequestExpired', `Request has expired: X-Amz-Date ${amzDate} is more than 5 minutes from the server's time ${now.toISOString()}.`);
}

function incomplete(why: string): VbsError {
  return new VbsError('IncompleteSignature', `The request signature is incomplete or malformed: ${why}.`);
}

function single(req: SignedRequest, name: string): string | undefined {
  const values = req.query.get(name);
  if (!values) return undefined;
  if (values.length !== 1) throw incomplete(`${name} is given more than once`);
  return values[0];
}

/** Which form the request is signed in, and its parts; no signature at all is MissingAuthenticationToken. */
function signatureParts(req: SignedRequest): Parts {
  const auth = req.headers.authorization;
  if (auth !== undefined) return headerParts(auth, req);
  if (req.query.has('X-Amz-Algorithm') || req.query.has('X-Amz-Signature')) return queryParts(req);
  if (req.query.has('Signature') || req.query.has('AWSAccessKeyId')) {
    throw new VbsError('AuthFailure', 'Signature Version 2 is not supported; sign requests with Signature Version 4 (AWS4-HMAC-SHA256).');
  }
  throw new VbsError('MissingAuthenticationToken', 'Request is missing Authentication Token: sign it with an access key (AWS4-HMAC-SHA256).');
}

function headerParts(auth: string, req: SignedRequest): Parts {
  if (!auth.startsWith(`${ALGORITHM} `)) throw incomplete(`the Authorization header must use ${ALGORITHM}`);
  const fields = new Map<string, string>();
  for (const piece of auth.slice(ALGORITHM.length + 1).split(',')) {
    const eq = piece.indexOf('=');
    if (eq < 0) throw incomplete('the Authorization header is not Credential=..., SignedHeaders=..., Signature=...');
    fields.set(piece.slice(0, eq).trim(), piece.slice(eq + 1).trim());
  }
  const amzDate = req.headers['x-amz-date'];
  if (typeof amzDate !== 'string') throw incomplete('the X-Amz-Date header is missing');
  return { ...credential(fields.get('Credential')), ...signedAndSignature(fields.get('SignedHeaders'), fields.get('Signature')), amzDate };
}

function queryParts(req: SignedRequest): Parts {
  if (single(req, 'X-Amz-Algorithm') !== ALGORITHM) throw incomplete(`X-Amz-Algorithm must be ${ALGORITHM}`);
  const amzDate = single(req, 'X-Amz-Date');
  if (amzDate === undefined) throw incomplete('X-Amz-Date is missing');
  // X-Amz-Expires is optional (aws4 leaves it out): without it, the header form's 5 minutes apply.
  const expiresText = single(req, 'X-Amz-Expires');
  if (expiresText !== undefined && (!/^[0-9]{1,6}$/.test(expiresText) || Number(expiresText) < 1 || Number(expiresText) > MAX_PRESIGNED_SECONDS)) {
    throw incomplete(`X-Amz-Expires must be a number of seconds from 1 to ${MAX_PRESIGNED_SECONDS}`);
  }
  const parts = { ...credential(single(req, 'X-Amz-Credential')), ...signedAndSignature(single(req, 'X-Amz-SignedHeaders'), single(req, 'X-Amz-Signature')), amzDate };
  return expiresText === undefined ? { ...parts, queryForm: true } : { ...parts, queryForm: true, expires: Number(expiresText) };
}

function credential(text: string | undefined): Pick<Parts, 'accessKeyId' | 'scopeDate' | 'region' | 'service'> {
  const m = text === undefined ? null : /^([A-Za-z0-9]{16,128})\/(\d{8})\/([a-z0-9-]{1,63})\/([a-z0-9-]{1,63})\/aws4_request$/.exec(text);
  if (!m) throw incomplete('the credential must be ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request');
  return { accessKeyId: m[1]!, scopeDate: m[2]!, region: m[3]!, service: m[4]! };
}

function signedAndSignature(signedHeaders: string | undefined, signature: string | undefined): Pick<Parts, 'signedHeaders' | 'signature'> {
  if (signedHeaders === undefined || !/^[a-z0-9-]+(;[a-z0-9-]+){0,63}$/.test(signedHeaders)) throw incomplete('the signed headers must be lower-case names separated by ;');
  if (signature === undefined || !/^[0-9a-f]{64}$/.test(signature)) throw incomplete('the signature must be 64 hexadecimal digits');
  return { signedHeaders: signedHeaders.split(';'), signature };
}

function parseAmzDate(text: string): Date {
  const m = AMZ_DATE.exec(text);
  const d = m ? new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!)) : undefined;
  if (!d || Number.isNaN(d.getTime())) throw incomplete('X-Amz-Date must be YYYYMMDDTHHMMSSZ');
  return d;
}

/** node:crypto as the signer's hash: a SHA-256, or an HMAC-SHA256 when given a key. */
class NodeSha256 {
  private readonly hash;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(bytes(data));
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.hash.digest()));
  }
}

function bytes(data: string | ArrayBuffer | ArrayBufferView): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

/** The signature AWS's signer makes for this request with this secret, over the headers the client signed. */
async function expectedSignature(req: SignedRequest, parts: Parts, secret: string, signingDate: Date): Promise<string> {
  const signer = new SignatureV4({
    credentials: { accessKeyId: parts.accessKeyId, secretAccessKey: secret },
    region: parts.region,
    service: SERVICE,
    sha256: NodeSha256,
    uriEscapePath: true,
    applyChecksum: false,
  });
  const headers: Record<string, string> = {};
  for (const h of parts.signedHeaders) {
    const value = req.headers[h];
    headers[h] = Array.isArray(value) ? value.join(',') : String(value);
  }
  // Every query parameter but the signature is signed, X-Amz-* ones of the query form included.
  const query: Record<string, string | string[]> = {};
  for (const [name, values] of req.query) {
    if (name === 'X-Amz-Signature') continue;
    query[name] = values.length === 1 ? values[0]! : [...values];
  }
  const host = headers.host ?? '';
  const request = { method: req.method, protocol: 'https:', hostname: host, path: req.path, query, headers, body: req.body.length ? req.body : undefined };
  // The signer adds an x-amz-date header; in the query form it is not among the signed headers.
  const signed = await signer.sign(request, {
    signingDate,
    signableHeaders: new Set(parts.signedHeaders),
    unsignableHeaders: parts.signedHeaders.includes('x-amz-date') ? undefined : new Set(['x-amz-date']),
  });
  const m = /Signature=([0-9a-f]{64})/.exec(String(signed.headers.authorization ?? signed.headers.Authorization));
  return m ? m[1]! : '';
}
