import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { randomBytes, randomUUID } from 'node:crypto';
import { crashPoint } from '../core/crash-points.js';
import * as metrics from '../core/metrics.js';
import { FAULTS, VbsError, errorMessage, toSafeError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { REQUEST_ID, REQUEST_ID_HEADER, requestScope } from '../core/request-context.js';
import { isReservedServiceName } from '../pki/identity.js';
import type { Record as XmlRecord, Value } from './xml.js';
import { decodeBody, decodeFields, encodeFields, envelope, escapeXml, MAX_REQUEST_LIST_ITEMS, parseEnvelope, xmlSafe } from './xml.js';
import type { ServiceDefinition } from './schema.js';
import { generateWsdl } from './wsdl.js';
import { routeOf, type StreamRoute } from './stream-route.js';
import { CrlWatch } from './crl-watch.js';
import { ConnectionIdentities, DEFAULT_MAX_ANONYMOUS_CONNECTIONS, SERVER_TLS_POLICY, refusalReason, type Identification, type Peer } from './tls-guard.js';

export interface CallContext {
  /** The caller's certificate common name: the user id. */
  readonly caller: string;
  /** Whether the caller's certificate carries the VBS administrator purpose (the front also honours its `admins` list). */
  readonly admin: boolean;
  /** This request's id: in the response's x-vbs-request-id header, in every fault, and on every log line. */
  readonly requestId: string;
  readonly log: Logger;
}

export type { Peer };

/** What became of a request, told to `beforeAnswer` just before its answer is sent (the front's audit log). */
export interface RequestOutcome {
  readonly requestId: string;
  /** The certificate's common name; undefined when the caller presented none the CA issued. */
  readonly caller?: string;
  /** When the caller was refused for its certificate: the name that certificate claims, unverified. */
  readonly claimedCaller?: string;
  readonly admin: boolean;
  /** The operation the body named; undefined when the request was refused before its body was read. */
  readonly operation?: string;
  /** The decoded input, when it decoded. */
  readonly input?: XmlRecord;
  readonly output?: XmlRecord;
  /** The answer's fault code, when it is a fault. */
  readonly fault?: string;
  /** The HTTP status of an answer that is not SOAP (404 for another path, 405 for another method). */
  readonly httpStatus?: number;
  /** The handler's context, when the request reached one. */
  readonly ctx?: CallContext;
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
  /**
   * Throws AuthFailure/UnauthorizedOperation for callers this service does
   * not serve. By default, tenants only: no service certificate and no name
   * reserved for services (the front's policy; delegates pass onlyServices).
   */
  readonly authorize?: (peer: Peer) => void;
  readonly maxBodyBytes?: number;
  /**
   * Told every request's outcome (refused callers too) before the answer is
   * sent. If it throws, the answer is an InternalError fault instead: a
   * request is never answered unrecorded.
   */
  readonly beforeAnswer?: (outcome: RequestOutcome) => void;
  /**
   * The VBS CA's revocation list (PEM file). Callers whose certificate it
   * lists are refused; the file is watched and a new list takes effect on
   * new and already open connections alike (see CrlWatch).
   */
  readonly crlFile?: string;
  /**
   * Connections without a certificate the CA vouches for, held open at once
   * (they can only be told AuthFailure); one more is closed at once.
   */
  readonly maxAnonymousConnections?: number;
  /** How long a request's body may take to arrive once its headers have; then RequestTimeout (recorded) and the connection closes. */
  readonly bodyTimeoutMs?: number;
  /**
   * Operations whose body or answer is a byte stream (an image), served under
   * `<def.path>/<prefix>/…` on the same listener, after the same identity and
   * authorization checks as SOAP (src/soap/stream-route.ts).
   */
  readonly streams?: readonly StreamRoute[];
}

const DEFAULT_MAX_BODY = 1024 * 1024;
/** What an oversized body is read to its end for, so its 413 arrives before the connection closes. */
const DRAIN_BYTES = 16 * 1024 * 1024;
const DRAIN_MS = 10_000;
const DEFAULT_BODY_TIMEOUT_MS = 50_000;

/** The front's callers: users, never a service's certificate or a name kept for services. */
export function tenantsOnly(peer: Peer): void {
  if (peer.service || isReservedServiceName(peer.name)) {
    throw new VbsError('AuthFailure', 'This certificate belongs to a VBS service; it cannot be used as a user identity.');
  }
}

/** A delegate's callers: certificates the VBS CA issued to a service, under one of the allowed names. */
export function onlyServices(allowed: readonly string[]): (peer: Peer) => void {
  return (peer) => {
    if (!peer.service || !allowed.includes(peer.name)) throw new VbsError('UnauthorizedOperation', 'This delegate serves the VBS front only.');
  };
}

/**
 * A SOAP 1.1 document/literal service over HTTPS (TLS 1.2 or later) with client
 * certificates. Body size is capped while it streams in; every request is
 * decoded against the service table before a handler sees it; every error
 * becomes a fault with a registered code, and only VbsError messages reach
 * the caller. Each request gets an id, sent back in the x-vbs-request-id
 * header and in every fault, and stamped on every log line of the work it
 * starts; a request from another VBS service keeps the id it came with.
 */
export function createSoapServer(opts: SoapServerOptions): Server {
  const { def, log } = opts;
  const maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY;
  const bodyTimeoutMs = opts.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT_MS;
  const authorize = opts.authorize ?? tenantsOnly;
  for (const name of Object.keys(def.operations)) {
    if (!opts.handlers[name]) throw new Error(`${def.name}: no handler for ${name}`);
  }
  // Streamed operations are counted under their own names, beside the SOAP ones.
  const operations = { ...def.operations, ...Object.fromEntries((opts.streams ?? []).map((r) => [r.operation, true])) };
  metrics.serviceOperations(def.name, operations);

  const secureContext = (crl: string | undefined) => ({ key: opts.tls.key, cert: opts.tls.cert, ca: opts.tls.ca, ...SERVER_TLS_POLICY, ...(crl ? { crl } : {}) });
  const identities = new ConnectionIdentities(opts.maxAnonymousConnections ?? DEFAULT_MAX_ANONYMOUS_CONNECTIONS, log);
  let crl: CrlWatch | undefined;
  if (opts.crlFile) {
    crl = new CrlWatch(opts.crlFile, opts.tls.ca, log, (pem) => {
      server.setSecureContext(secureContext(pem));
      // New session tickets keys: a revoked caller cannot resume a session
      // (which skips certificate checks); everyone else does one full handshake.
      server.setTicketKeys(randomBytes(48));
      cutRevoked();
    });
  }
  const server = createServer(
    {
      ...secureContext(crl?.crlPem),
      requestCert: true,
      // Checked per request instead, so a caller without a certificate gets a
      // clear AuthFailure fault rather than a bare TLS alert.
      rejectUnauthorized: false,
    },
    (req, res) => {
      const who = identities.identify(req.socket as TLSSocket, crl);
      const peer = 'peer' in who ? who.peer : undefined;
      const forwarded = req.headers[REQUEST_ID_HEADER];
      // Only a service may name the request (the front, for the user's request it serves).
      const requestId = peer?.service && typeof forwarded === 'string' && REQUEST_ID.test(forwarded) ? forwarded : randomUUID();
      res.setHeader(REQUEST_ID_HEADER, requestId);
      requestScope.run({ requestId, elapsed: metrics.stopwatch() }, () => {
        handle(req, res, who, requestId).catch((err) => {
          log.error('request failed outside the handler', { requestId, err });
          if (!res.headersSent) sendFault(res, def.namespace, toSafeError(err), requestId);
        });
      });
    },
  );
  // Open connections, so a revocation reaches the ones already authenticated.
  const live = new Set<TLSSocket>();
  server.on('secureConnection', (socket: TLSSocket) => {
    identities.bind(socket);
    if (socket.destroyed) return metrics.tlsRefused(def.name, 'too_many_anonymous');
    live.add(socket);
    socket.once('close', () => live.delete(socket));
  });
  server.once('close', () => crl?.close());
  server.on('tlsClientError', () => metrics.tlsRefused(def.name, 'handshake_failed'));
  function cutRevoked(): void {
    for (const socket of live) {
      if (crl?.isRevoked(socket.getPeerCertificate()?.serialNumber)) {
        log.info('connection of a revoked certificate closed', { caller: socket.getPeerCertificate()?.subject?.CN });
        metrics.revokedConnectionCut(def.name);
        socket.destroy();
      }
    }
  }
  server.keepAliveTimeout = 30_000;
  server.headersTimeout = 20_000;
  // Node's own cut comes after ours, which answers (and records) RequestTimeout.
  // A streamed operation's body takes as long as its size needs (it has an idle limit of its own instead).
  server.requestTimeout = opts.streams?.length ? 0 : bodyTimeoutMs + 10_000;

  /** Runs beforeAnswer; its failure (logged here) is the fault to answer with. */
  function told(outcome: RequestOutcome): VbsError | undefined {
    metrics.requestAnswered(def.name, operations, outcome, requestScope.getStore()?.elapsed?.());
    if (!opts.beforeAnswer) return undefined;
    try {
      opts.beforeAnswer(outcome);
      return undefined;
    } catch (err) {
      log.error('the request could not be recorded; answered with an internal error', { requestId: outcome.requestId, err });
      return toSafeError(new Error('unrecorded'));
    }
  }

  /** Answers a plain HTTP status (not SOAP), recorded first. */
  function answerPlain(res: ServerResponse, status: number, text: string, outcome: RequestOutcome, headers: Record<string, string> = {}): void {
    const unrecorded = told({ ...outcome, httpStatus: status });
    if (unrecorded) return sendFault(res, def.namespace, unrecorded, outcome.requestId);
    res.writeHead(status, { 'content-type': 'text/plain', ...headers }).end(text);
  }

  /** Answers a fault, recorded first (beforeAnswer). */
  function answerFault(res: ServerResponse, err: VbsError, outcome: Omit<RequestOutcome, 'fault'>): void {
    sendFault(res, def.namespace, told({ ...outcome, fault: err.code }) ?? err, outcome.requestId);
  }

  async function handle(req: IncomingMessage, res: ServerResponse, who: Identification, requestId: string): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://vbs.invalid');
    // Who asked, as far as is known yet: every answer below is recorded with it.
    const asked: RequestOutcome = 'peer' in who ? { requestId, caller: who.peer.name, admin: who.peer.admin } : { requestId, admin: false, ...(who.claimed ? { claimedCaller: who.claimed } : {}) };
    const route = routeOf(opts.streams ?? [], def.path, url.pathname, req.method);
    if (url.pathname !== def.path && !route) {
      req.resume();
      return answerPlain(res, 404, 'Not found\n', asked);
    }
    if (!('peer' in who)) {
      req.resume();
      metrics.tlsRefused(def.name, refusalReason(who.refusal));
      return answerFault(res, new VbsError('AuthFailure', who.refusal), asked);
    }
    const peer = who.peer;
    try {
      authorize(peer);
    } catch (err) {
      req.resume();
      log.info('caller refused', { requestId, caller: peer.name, service: peer.service });
      return answerFault(res, toSafeError(err), { requestId, caller: peer.name, admin: peer.admin });
    }
    const caller = peer.name;
    if (route) return serveStream(req, res, route, url, { requestId, caller, admin: peer.admin });
    if (req.method === 'GET' && url.search.toLowerCase() === '?wsdl') {
      res.writeHead(200, { 'content-type': 'text/xml; charset=utf-8' }).end(generateWsdl(def, opts.publicUrl()));
      req.resume();
      return;
    }
    if (req.method !== 'POST') {
      req.resume();
      return answerPlain(res, 405, 'Use POST for SOAP requests or GET ?wsdl\n', asked, { allow: 'POST, GET' });
    }
    const body = await readBody(req, maxBody, bodyTimeoutMs);
    if (body.late) {
      log.info('fault', { requestId, caller, code: 'RequestTimeout' });
      res.once('finish', () => req.socket.destroy());
      return answerFault(res, new VbsError('RequestTimeout', `The request body did not arrive within ${Math.round(bodyTimeoutMs / 1000)} s.`), asked);
    }
    if (body.tooLarge) {
      log.info('fault', { requestId, caller, code: 'RequestTooLarge' });
      // Read to its end (bounded), the request gets its answer; a body past
      // the bound gets it too, then the connection is cut.
      if (!body.drained) res.once('finish', () => req.socket.destroy());
      answerFault(res, new VbsError('RequestTooLarge', `The request body exceeds ${maxBody} bytes.`), { requestId, caller, admin: peer.admin });
      return;
    }
    const ctx: CallContext = { caller, admin: peer.admin, requestId, log: log.child({ requestId, caller }) };
    let opName = '?';
    let input: XmlRecord | undefined;
    try {
      const { name, ns, content } = parseEnvelope(decodeBody(body.data, req.headers['content-type']));
      opName = name;
      const op = ns === def.namespace && Object.prototype.hasOwnProperty.call(def.operations, name) ? def.operations[name] : undefined;
      if (!op) throw new VbsError('InvalidParameterValue', `Unknown operation ${name.slice(0, 64)}.`);
      checkSoapAction(req.headers.soapaction, def.namespace, name);
      input = decodeFields(def, op.input, content, name, MAX_REQUEST_LIST_ITEMS);
      // Fault injection for crash tests (src/core/crash-points.ts): die before
      // the handler runs, or after it did its work but before the answer.
      crashPoint(`${def.name}.${name}/before`);
      const output = await opts.handlers[name]!(input, ctx);
      crashPoint(`${def.name}.${name}/after`);
      const unwritable = (field: string) => ctx.log.error('a stored value holds a character XML cannot carry; sent with U+FFFD in its place', { op: name, field });
      const xml = envelope(def.namespace, `<tns:${name}Response>${encodeFields(def, op.output, output, unwritable)}</tns:${name}Response>`);
      const unrecorded = told({ requestId, caller, admin: peer.admin, operation: name, input, output, ctx });
      if (unrecorded) return sendFault(res, def.namespace, unrecorded, requestId);
      res.writeHead(200, { 'content-type': 'text/xml; charset=utf-8' }).end(xml);
      ctx.log.debug('ok', { op: name });
    } catch (err) {
      const safe = toSafeError(err);
      if (safe.code === 'InternalError') ctx.log.error('internal error', { op: opName, err });
      // The cause (a delegate's address, a command's output) stays here, under the request id.
      else ctx.log.info('fault', { op: opName, code: safe.code, message: safe.message, ...(safe.cause ? { cause: errorMessage(safe.cause) } : {}) });
      answerFault(res, safe, { requestId, caller, admin: peer.admin, operation: opName === '?' ? undefined : opName, input, ctx });
    }
  }

  /**
   * A streamed operation: the route reads the request (or writes the answer's
   * bytes) itself; what it returns is recorded, and its fault answered, like
   * any operation's.
   */
  async function serveStream(req: IncomingMessage, res: ServerResponse, found: { route: StreamRoute; rest: string }, url: URL, who: { requestId: string; caller: string; admin: boolean }): Promise<void> {
    const { route, rest } = found;
    const ctx: CallContext = { caller: who.caller, admin: who.admin, requestId: who.requestId, log: log.child({ requestId: who.requestId, caller: who.caller }) };
    const asked = { ...who, operation: route.operation };
    if (req.method !== route.method) {
      req.resume();
      return answerPlain(res, 405, `Use ${route.method} for ${route.operation}\n`, asked, { allow: route.method });
    }
    let input: XmlRecord | undefined;
    try {
      const answer = await route.handle({ req, rest, query: url.searchParams, ctx, noteInput: (i) => (input = i) });
      const unrecorded = told({ ...asked, input, output: answer.output, ctx });
      if (unrecorded) {
        answer.body?.destroy();
        return sendFault(res, def.namespace, unrecorded, who.requestId);
      }
      if (answer.body) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(answer.length) });
        answer.body.once('error', (err) => {
          ctx.log.warn('stream cut while sending', { op: route.operation, message: errorMessage(err) });
          res.destroy();
        });
        answer.body.pipe(res);
        return;
      }
      const xml = envelope(def.namespace, `<tns:${route.operation}Response>${encodeFields(def, route.output, answer.output)}</tns:${route.operation}Response>`);
      res.writeHead(200, { 'content-type': 'text/xml; charset=utf-8' }).end(xml);
    } catch (err) {
      const safe = toSafeError(err);
      if (safe.code === 'InternalError') ctx.log.error('internal error', { op: route.operation, err });
      else ctx.log.info('fault', { op: route.operation, code: safe.code, message: safe.message, ...(safe.cause ? { cause: errorMessage(safe.cause) } : {}) });
      if (res.headersSent) return void res.destroy();
      // A body not read to its end: the connection cannot carry another request.
      // What still comes is read and dropped for a while (bounded), so the
      // sender, still writing, reads this fault instead of a reset.
      if (!req.readableEnded) {
        res.setHeader('connection', 'close');
        drainThenCut(req);
      }
      answerFault(res, safe, { ...asked, input, ctx });
    }
  }

  return server;
}

/**
 * A SOAPAction header, when a client sends a non-empty one, must name the
 * operation in the body: the WSDL's `<namespace>/<operation>`, or the
 * operation's name as the last part of a URI.
 */
function checkSoapAction(header: string | string[] | undefined, namespace: string, operation: string): void {
  if (header === undefined) return;
  const action = (Array.isArray(header) ? header.join(',') : header).trim().replace(/^"(.*)"$/, '$1').trim();
  if (action === '' || action === `${namespace}/${operation}` || action.split(/[/#:]/).at(-1) === operation) return;
  throw new VbsError('MalformedRequest', `The SOAPAction header (${action.slice(0, 80)}) names another operation than the body (${operation}).`);
}

/** Reads and drops the rest of a refused body, up to DRAIN_BYTES or DRAIN_MS, then closes the connection. */
function drainThenCut(req: IncomingMessage): void {
  let size = 0;
  // Held now: once the request ends, req.socket is detached (null); a request cut already has none.
  const socket = req.socket as IncomingMessage['socket'] | null;
  if (!socket || req.destroyed) return;
  const cut = () => {
    clearTimeout(timer);
    socket.destroy();
  };
  const timer = setTimeout(cut, DRAIN_MS);
  req.on('data', (c: Buffer) => {
    size += c.length;
    if (size > DRAIN_BYTES) cut();
  });
  req.once('end', () => clearTimeout(timer));
  req.once('close', () => clearTimeout(timer));
  req.resume();
}

type BodyRead = { tooLarge: false; late?: false; data: Buffer } | { tooLarge: true; late?: false; drained: boolean } | { tooLarge: false; late: true };

/**
 * Reads a body of at most `max` bytes. A larger one (declared or streamed) is
 * read on to its end and thrown away, up to DRAIN_BYTES or DRAIN_MS, so that
 * closing the connection after the 413 does not reset it under the answer.
 * A body not all there within `timeoutMs` is `late`: answered (and recorded)
 * as RequestTimeout rather than left to Node's requestTimeout, which cuts the
 * connection with no line in the audit log.
 */
function readBody(req: IncomingMessage, max: number, timeoutMs: number): Promise<BodyRead> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const deadline = setTimeout(() => finish({ tooLarge: false, late: true }), timeoutMs);
    const finish = (r: BodyRead) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(deadline);
      resolve(r);
    };
    const overflow = () => {
      over = true;
      chunks.length = 0;
      timer = setTimeout(() => finish({ tooLarge: true, drained: false }), DRAIN_MS);
      const declared = Number(req.headers['content-length'] ?? 0);
      if (declared > DRAIN_BYTES) finish({ tooLarge: true, drained: false });
    };
    if (Number(req.headers['content-length'] ?? 0) > max) overflow();
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (!over && size > max) overflow();
      if (!over) chunks.push(c);
      else if (size > DRAIN_BYTES) finish({ tooLarge: true, drained: false });
    });
    req.on('end', () => finish(over ? { tooLarge: true, drained: true } : { tooLarge: false, data: Buffer.concat(chunks) }));
    req.on('error', (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(deadline);
      reject(err);
    });
  });
}

export function faultXml(namespace: string, err: VbsError, requestId?: string): string {
  return envelope(
    namespace,
    `<soap:Fault><faultcode>soap:${FAULTS[err.code].by}</faultcode><faultstring>${err.code}</faultstring>` +
      `<detail><tns:VbsFault><tns:code>${err.code}</tns:code><tns:message>${escapeXml(xmlSafe(err.message))}</tns:message>` +
      `${requestId ? `<tns:requestId>${escapeXml(requestId)}</tns:requestId>` : ''}</tns:VbsFault></detail></soap:Fault>`,
  );
}

function sendFault(res: ServerResponse, namespace: string, err: VbsError, requestId: string): void {
  res.writeHead(FAULTS[err.code].http, { 'content-type': 'text/xml; charset=utf-8', connection: err.code === 'RequestTooLarge' ? 'close' : 'keep-alive' });
  res.end(faultXml(namespace, err, requestId));
}

export type { Value };
