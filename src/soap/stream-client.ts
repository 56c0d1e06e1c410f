import { request, type Agent } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { VbsError, errorMessage } from '../core/errors.js';
import { REQUEST_ID_HEADER, currentRequestId } from '../core/request-context.js';
import type { TlsMaterial } from '../core/service.js';
import { parseFault } from './client.js';
import type { Field, ServiceDefinition } from './schema.js';
import { decodeFields, parseEnvelope, RESPONSE_LIMITS, type Record as XmlRecord } from './xml.js';

/** Where a streamed operation is (src/soap/stream-route.ts), and how to reach it. */
export interface StreamTarget {
  readonly def: ServiceDefinition;
  /** The service's URL (its SOAP path); the route's path is added to it. */
  readonly url: string;
  readonly tls: TlsMaterial;
  /** How users read the service's name in faults. */
  readonly name?: string;
  readonly agent?: Agent;
}

export interface StreamRequest {
  readonly method: 'PUT' | 'GET';
  /** Under the service's path: `images` or `images/<id>`. */
  readonly path: string;
  readonly query?: Readonly<Record<string, string | undefined>>;
  /** A PUT's body, streamed; its length when known (else chunked). */
  readonly body?: Readable;
  readonly length?: number;
  /** No byte sent or received for this long: the transfer is cut (ServiceUnavailable). */
  readonly idleMs: number;
}

const MAX_ANSWER_BYTES = 1024 * 1024;

/**
 * Opens a streamed operation: sends the body as it is read, and resolves with
 * the answer once its headers arrive. A fault (any status but 200) is read
 * and thrown as the VbsError it carries; a 200 is the caller's to read (the
 * bytes of a GET, or a SOAP envelope: `readAnswer`).
 */
export function openStream(t: StreamTarget, r: StreamRequest): Promise<IncomingMessage> {
  const url = new URL(t.url);
  url.pathname = `${url.pathname.replace(/\/$/, '')}/${r.path}`;
  for (const [k, v] of Object.entries(r.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
  const name = t.name ?? t.def.name;
  const forwarded = currentRequestId();
  return new Promise((resolve, reject) => {
    let settled = false;
    /** An answer came: a failure to send the rest (the service stopped reading) is no longer the outcome. */
    let answered = false;
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      r.body?.unpipe();
      reject(err);
    };
    const req = request(
      url,
      {
        method: r.method,
        ...(t.agent ? { agent: t.agent } : { key: t.tls.key, cert: t.tls.cert, ca: t.tls.ca, agent: false }),
        rejectUnauthorized: true,
        headers: {
          'content-type': 'application/octet-stream',
          ...(r.length !== undefined ? { 'content-length': String(r.length) } : r.body ? { 'transfer-encoding': 'chunked' } : {}),
          ...(forwarded ? { [REQUEST_ID_HEADER]: forwarded } : {}),
        },
      },
      (res) => {
        answered = true;
        if (res.statusCode === 200) {
          settled = true;
          // The answer's bytes have their own idle limit, as the upload had.
          res.setTimeout(r.idleMs, () => res.destroy(new VbsError('ServiceUnavailable', `${name} stopped sending for ${Math.round(r.idleMs / 1000)} s.`)));
          return resolve(res);
        }
        // Refused before the body was all sent (too large, over quota): stop sending, read why.
        r.body?.unpipe(req);
        readText(res)
          .then((text) => {
            const id = res.headers[REQUEST_ID_HEADER];
            fail(parseFault(text, res.statusCode ?? 0, name, typeof id === 'string' ? id : undefined));
          })
          .catch(fail)
          .finally(() => req.destroy());
      },
    );
    req.setTimeout(r.idleMs, () => req.destroy(new Error(`no progress for ${r.idleMs} ms`)));
    req.on('error', (err) => answered || fail(new VbsError('ServiceUnavailable', `${name} could not be reached, or the transfer was cut.`, { cause: new Error(`${url.origin}: ${errorMessage(err)}`) })));
    if (!r.body) return void req.end();
    // A source that fails (the user's upload cut) cuts this request too: the service sees it end early.
    r.body.once('error', (err) => {
      req.destroy(err);
      fail(err instanceof VbsError ? err : new VbsError('RequestTimeout', 'The upload was cut before its end.', { cause: err }));
    });
    r.body.pipe(req);
  });
}

/** Reads a 200 SOAP answer of `operation` and decodes its fields. */
export async function readAnswer(res: IncomingMessage, def: ServiceDefinition, operation: string, fields: readonly Field[], name = def.name): Promise<XmlRecord> {
  const text = await readText(res);
  try {
    const parsed = parseEnvelope(text, RESPONSE_LIMITS);
    if (parsed.name !== `${operation}Response`) throw new Error(`answered ${parsed.name.slice(0, 64)}`);
    return decodeFields(def, fields, parsed.content, parsed.name);
  } catch (err) {
    throw new VbsError('ServiceUnavailable', `${name} answered ${operation} with an invalid response.`, { cause: err });
  }
}

function readText(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_ANSWER_BYTES) return void res.destroy(new Error('answer too large'));
      chunks.push(c);
    });
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
  });
}
