import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { randomUUID } from 'node:crypto';
import { crashPoint } from '../core/crash-points.js';
import { FAULTS, VbsError, toSafeError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { Record as XmlRecord, Value } from './xml.js';
import { decodeFields, encodeFields, envelope, escapeXml, parseEnvelope } from './xml.js';
import type { ServiceDefinition } from './schema.js';
import { generateWsdl } from './wsdl.js';

export interface CallContext {
  /** The caller's certificate common name: the user id. */
  readonly caller: string;
  readonly requestId: string;
  readonly log: Logger;
}

export type Handler = (input: XmlRecord, ctx: CallContext) => Promise<XmlRecord> | XmlRecord;
export type Handlers = Readonly<Record<string, Handler>>;

import type { TlsMaterial } from '../core/service.js';
export type { TlsMaterial };

export interface SoapServerOptions {
  readonly def: ServiceDefinition;
  readonly handlers: Handlers;
  readonly tls: TlsMaterial;
  readonly log: Logger;
  /** The public URL written into the served WSDL. */
  readonly publicUrl: () => string;
  /** Throws AuthFailure/UnauthorizedOperation for callers this service does not serve. */
  readonly authorize?: (caller: string) => void;
  readonly maxBodyBytes?: number;
}

const DEFAULT_MAX_BODY = 1024 * 1024;

/**
 * A SOAP 1.1 document/literal service over HTTPS with client certificates.
 * Body size is capped while it streams in; every request is decoded against
 * the service table before a handler sees it; every error becomes a fault
 * with a registered code, and only VbsError messages reach the caller.
 */
export function createSoapServer(opts: SoapServerOptions): Server {
  const { def, log } = opts;
  const maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY;
  for (const name of Object.keys(def.operations)) {
    if (!opts.handlers[name]) throw new Error(`${def.name}: no handler for ${name}`);
  }

  const server = createServer(
    {
      key: opts.tls.key,
      cert: opts.tls.cert,
      ca: opts.tls.ca,
      requestCert: true,
      // Checked per request instead, so a caller without a certificate gets a
      // clear AuthFailure fault rather than a bare TLS alert.
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
    },
    (req, res) => {
      const requestId = randomUUID();
      handle(req, res, requestId).catch((err) => {
        log.error('request failed outside the handler', { requestId, err });
        if (!res.headersSent) sendFault(res, def.namespace, toSafeError(err));
      });
    },
  );
  server.keepAliveTimeout = 30_000;
  server.headersTimeout = 20_000;
  server.requestTimeout = 60_000;

  async function handle(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
    const socket = req.socket as TLSSocket;
    const url = new URL(req.url ?? '/', 'https://vbs.invalid');
    if (url.pathname !== def.path) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found\n');
      req.resume();
      return;
    }
    const cert = socket.authorized ? socket.getPeerCertificate() : undefined;
    const caller = cert?.subject?.CN;
    if (!caller || Array.isArray(caller)) {
      req.resume();
      return sendFault(res, def.namespace, new VbsError('AuthFailure', 'A client certificate issued by the VBS certificate authority is required.'));
    }
    try {
      opts.authorize?.(caller);
    } catch (err) {
      req.resume();
      return sendFault(res, def.namespace, toSafeError(err));
    }
    if (req.method === 'GET' && url.search.toLowerCase() === '?wsdl') {
      res.writeHead(200, { 'content-type': 'text/xml; charset=utf-8' }).end(generateWsdl(def, opts.publicUrl()));
      req.resume();
      return;
    }
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'POST, GET', 'content-type': 'text/plain' }).end('Use POST for SOAP requests or GET ?wsdl\n');
      req.resume();
      return;
    }
    const body = await readBody(req, maxBody);
    if (body === null) {
      sendFault(res, def.namespace, new VbsError('RequestTooLarge', `The request body exceeds ${maxBody} bytes.`));
      req.destroy();
      return;
    }
    const ctx: CallContext = { caller, requestId, log: log.child({ requestId, caller }) };
    let opName = '?';
    try {
      const { name, content } = parseEnvelope(body);
      opName = name;
      const op = Object.prototype.hasOwnProperty.call(def.operations, name) ? def.operations[name] : undefined;
      if (!op) throw new VbsError('InvalidParameterValue', `Unknown operation ${name.slice(0, 64)}.`);
      const input = decodeFields(def, op.input, content, name);
      // Fault injection for crash tests (src/core/crash-points.ts): die before
      // the handler runs, or after it did its work but before the answer.
      crashPoint(`${def.name}.${name}/before`);
      const output = await opts.handlers[name]!(input, ctx);
      crashPoint(`${def.name}.${name}/after`);
      const xml = envelope(def.namespace, `<tns:${name}Response>${encodeFields(def, op.output, output)}</tns:${name}Response>`);
      res.writeHead(200, { 'content-type': 'text/xml; charset=utf-8' }).end(xml);
      ctx.log.debug('ok', { op: name });
    } catch (err) {
      const safe = toSafeError(err);
      if (safe.code === 'InternalError') ctx.log.error('internal error', { op: opName, err });
      else ctx.log.info('fault', { op: opName, code: safe.code, message: safe.message });
      sendFault(res, def.namespace, safe);
    }
  }

  return server;
}

function readBody(req: IncomingMessage, max: number): Promise<string | null> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > max) return Promise.resolve(null);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > max) {
        over = true;
        resolve(null);
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => !over && resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export function faultXml(namespace: string, err: VbsError): string {
  return envelope(
    namespace,
    `<soap:Fault><faultcode>soap:${FAULTS[err.code].by}</faultcode><faultstring>${err.code}</faultstring>` +
      `<detail><tns:VbsFault><tns:code>${err.code}</tns:code><tns:message>${escapeXml(err.message)}</tns:message></tns:VbsFault></detail></soap:Fault>`,
  );
}

function sendFault(res: ServerResponse, namespace: string, err: VbsError): void {
  res.writeHead(FAULTS[err.code].http, { 'content-type': 'text/xml; charset=utf-8', connection: err.code === 'RequestTooLarge' ? 'close' : 'keep-alive' });
  res.end(faultXml(namespace, err));
}

export type { Value };
