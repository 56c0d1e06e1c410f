import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { createScope, getPayloadHash, getSigningKey, SignatureV4Base } from '@smithy/signature-v4';
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
  /** Header form: the header that dates the request, which must be signed (X-Amz-Date, or Date). */
  readonly dateHeader?: 'x-amz-date' | 'date';
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
  if (parts.dateHeader && !parts.signedHeaders.includes(parts.dateHeader)) throw incomplete(`the signed headers must include ${parts.dateHeader}`);
  for (const h of parts.signedHeaders) if (req.headers[h] === undefined) throw incomplete(`the signed header ${h} is not in the request`);
  const claimed = req.headers['x-amz-content-sha256'];
  if (claimed !== undefined && claimed !== createHash('sha256').update(req.body).digest('hex')) {
    throw new VbsError('SignatureDoesNotMatch', 'The x-amz-content-sha256 header is not the hash of the body; the body must be signed.');
  }
  const secret = opts.secretOf(parts.accessKeyId);
  if (secret === undefined) throw new VbsError('AuthFailure', 'AWS was not able to validate the provided access credentials.');

  const given = Buffer.from(parts.signature, 'hex');
  const matches = async (method: string) => timingSafeEqual(given, await expectedSignature({ ...req, method }, parts, secret));
  // boto3's generate_presigned_url signs for the operation's method (POST), and such a URL is
  // opened with GET: a query-form request without a body verifies signed for either method
  // (EC2 reads GET and POST alike, and nothing else of the request differs).
  const otherMethod = parts.queryForm && req.body.length === 0 ? { GET: 'POST', POST: 'GET' }[req.method] : undefined;
  if (!(await matches(req.method)) && !(otherMethod !== undefined && (await matches(otherMethod)))) {
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
  if (req.query.has('X-Amz-Security-Token') || req.headers['x-amz-security-token'] !== undefined) {
    throw new VbsError('AuthFailure', 'Session tokens (X-Amz-Security-Token) are not supported: VBS has no STS; sign with an access key of a VBS user.');
  }
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
  // The request's time: X-Amz-Date, or (botocore sends it so when the request has a Date header) the signed Date header.
  const amzDate = req.headers['x-amz-date'];
  const date = req.headers.date;
  const parts = { ...credential(fields.get('Credential')), ...signedAndSignature(fields.get('SignedHeaders'), fields.get('Signature')) };
  if (typeof amzDate === 'string') return { ...parts, amzDate, dateHeader: 'x-amz-date' };
  if (typeof date !== 'string') throw incomplete('the X-Amz-Date header (or a Date header) is missing');
  return { ...parts, amzDate: amzDateOf(date), dateHeader: 'date' };
}

/** An HTTP date (RFC 7231: Mon, 07 Dec 2026 12:00:00 GMT) as X-Amz-Date writes it; anything else is malformed. */
function amzDateOf(httpDate: string): string {
  const ms = /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} (GMT|[-+]0000)$/.test(httpDate) ? Date.parse(httpDate) : NaN;
  if (Number.isNaN(ms)) throw incomplete('the Date header must be an HTTP date such as Mon, 07 Dec 2026 12:00:00 GMT');
  return new Date(ms).toISOString().replace(/[:-]|\.\d{3}/g, '');
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

/**
 * AWS's own SigV4 steps (@smithy/signature-v4's canonical request, string to
 * sign and signing key), over exactly the headers the client signed. The
 * signer's sign() is not used: it decides itself which headers to sign (it
 * drops Date and sets X-Amz-Date), and a verifier must take the client's list.
 */
class Verifier extends SignatureV4Base {
  constructor(region: string) {
    // The credentials are never read: the secret of the request's key is given to each call.
    super({ service: SERVICE, region, credentials: { accessKeyId: '', secretAccessKey: '' }, sha256: NodeSha256, uriEscapePath: true, applyChecksum: false });
  }

  async signature(req: SignedRequest, parts: Parts, secret: string): Promise<Buffer> {
    // Canonical header values: trimmed, inner runs of spaces as one (SigV4's rule, as the signer has it).
    const headers: Record<string, string> = {};
    for (const h of parts.signedHeaders) {
      const value = req.headers[h];
      headers[h] = (Array.isArray(value) ? value.join(',') : String(value)).trim().replace(/\s+/g, ' ');
    }
    // Every query parameter but the signature is signed (getCanonicalQuery leaves X-Amz-Signature out).
    const query: Record<string, string | string[]> = {};
    for (const [name, values] of req.query) query[name] = values.length === 1 ? values[0]! : [...values];
    const request = { method: req.method, protocol: 'https:', hostname: headers.host ?? '', path: req.path, query, headers, body: req.body.length ? req.body : undefined };
    const payloadHash = await getPayloadHash(request, NodeSha256);
    const scope = createScope(parts.scopeDate, parts.region, SERVICE);
    const stringToSign = await this.createStringToSign(parts.amzDate, scope, this.createCanonicalRequest(request, headers, payloadHash), ALGORITHM);
    const key = await getSigningKey(NodeSha256, { accessKeyId: parts.accessKeyId, secretAccessKey: secret }, parts.scopeDate, parts.region, SERVICE);
    return createHmac('sha256', key).update(stringToSign, 'utf8').digest();
  }
}

/** The signature the key's secret makes for this request, over the headers the client signed. */
function expectedSignature(req: SignedRequest, parts: Parts, secret: string): Promise<Buffer> {
  return new Verifier(parts.region).signature(req, parts, secret);
}
