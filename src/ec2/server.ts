import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { VbsError, errorMessage, toSafeError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { REQUEST_ID_HEADER, requestScope } from '../core/request-context.js';
import type { CallContext, Handlers, RequestOutcome } from '../soap/server.js';
import { SERVER_TLS_POLICY } from '../soap/tls-guard.js';
import type { Record as XmlRecord } from '../soap/xml.js';
import type { DevicePrefix } from './devices.js';
import { ACTIONS } from './operations.js';
import { Params } from './params.js';
import { ReplayGuard } from './replay.js';
import { verifySigV4 } from './sigv4.js';
import { ec2Code, errorResponse, errorStatus, response } from './xml.js';

/** Who an access key belongs to, with its secret (unsealed), for a key in force. */
export interface KeyHolder {
  readonly user: string;
  readonly admin: boolean;
  readonly secret: string;
}

export interface Ec2ServerOptions {
  /** The front's operations: the very handlers the SOAP service calls. */
  readonly handlers: Handlers;
  /** The server certificate (from the VBS CA) and key; no client certificate is asked for. */
  readonly tls: { readonly key: string | Buffer; readonly cert: string | Buffer };
  readonly log: Logger;
  readonly region: string;
  readonly devicePrefix: DevicePrefix;
  readonly maxSkewMs: number;
  /** The holder of an access key in force, read at each request (a revocation applies to the next one). */
  readonly keyHolder: (accessKeyId: string) => KeyHolder | undefined;
  /** Told each outcome before its answer (the front's audit log); if it throws, the answer is InternalError. */
  readonly beforeAnswer?: (outcome: RequestOutcome) => void;
  readonly maxBodyBytes?: number;
  readonly now?: () => Date;
}

const DEFAULT_MAX_BODY = 1024 * 1024;
/** EC2 reads requests by Action whatever their Version; ours is 2016-11-15. */
const READ_ONLY_PREFIXES = ['Describe'];

/**
 * Why not express (allowed by the design card): this listener has one path,
 * one body type and one answer format, and needs the raw body bytes for the
 * signature; node:https with a bounded body read is all of it, as the SOAP
 * server already is. express would add routing and body parsers to bypass.
 *
 * The EC2 Query API listener (issue 18): HTTPS with the front's server
 * certificate and no client certificate; each request is authenticated by its
 * SigV4 signature (src/ec2/sigv4.ts), parsed (src/ec2/params.ts), and
 * translated to the front's own operation (src/ec2/operations.ts), whose
 * request id, audit line, ownership and quota checks are the SOAP call's.
 */
export function createEc2Server(opts: Ec2ServerOptions): Server {
  const { log } = opts;
  const maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY;
  const now = opts.now ?? (() => new Date());
  const replays = new ReplayGuard();
  const server = createServer({ key: opts.tls.key, cert: opts.tls.cert, ...SERVER_TLS_POLICY }, (req, res) => {
    const requestId = randomUUID();
    res.setHeader(REQUEST_ID_HEADER, requestId);
    res.setHeader('x-amzn-requestid', requestId);
    requestScope.run({ requestId }, () => {
      handle(req, res, requestId).catch((err) => {
        log.error('EC2 request failed outside the handler', { requestId, err });
        if (!res.headersSent) sendError(res, toSafeError(err), '', requestId);
      });
    });
  });
  server.keepAliveTimeout = 30_000;
  server.headersTimeout = 20_000;
  server.requestTimeout = 60_000;

  /** Runs beforeAnswer; a failure to record is the answer (InternalError). */
  function told(outcome: RequestOutcome): VbsError | undefined {
    if (!opts.beforeAnswer) return undefined;
    try {
      opts.beforeAnswer(outcome);
      return undefined;
    } catch (err) {
      log.error('the request could not be recorded; answered with an internal error', { requestId: outcome.requestId, err });
      return toSafeError(new Error('unrecorded'));
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://ec2.invalid');
    let action = '';
    let caller: KeyHolder | undefined;
    let recorded = false;
    let ctx: CallContext | undefined;
    try {
      if (url.pathname !== '/') throw new VbsError('InvalidAction', 'The EC2 API is served at the path /.');
      if (req.method !== 'POST' && req.method !== 'GET') throw new VbsError('InvalidAction', 'Send EC2 requests with POST (a form body) or GET (a query string).');
      const body = await readBody(req, maxBody);
      const query = new Map<string, string[]>();
      for (const [k, v] of url.searchParams) query.set(k, [...(query.get(k) ?? []), v]);
      const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (req.method === 'POST' && body.length && type !== 'application/x-www-form-urlencoded') {
        throw new VbsError('InvalidParameterValue', 'A POST body must be application/x-www-form-urlencoded.');
      }
      const pairs = [...url.searchParams, ...(req.method === 'POST' ? new URLSearchParams(body.toString('utf8')) : [])];
      const params = Params.from(pairs);
      action = params.action ?? '';

      const verified = await verifySigV4(
        { method: req.method, path: url.pathname, query, headers: req.headers, body },
        {
          region: opts.region,
          now: now(),
          maxSkewMs: opts.maxSkewMs,
          secretOf: (id) => (caller = opts.keyHolder(id))?.secret,
        },
      );
      const holder = caller!;
      ctx = { caller: holder.user, admin: holder.admin, requestId, log: log.child({ requestId, caller: holder.user, via: 'ec2' }) };
      if (!action) throw new VbsError('MissingParameter', 'The request must contain the parameter Action.');
      const op = Object.hasOwn(ACTIONS, action) ? ACTIONS[action]! : undefined;
      if (!op) throw new VbsError('InvalidAction', `The action ${action.slice(0, 64)} is not valid for this web service.`);
      // A replayed change is refused; reads, and creates carrying a ClientToken (the same answer again), are harmless to repeat.
      const harmless = READ_ONLY_PREFIXES.some((p) => action.startsWith(p)) || pairs.some(([k]) => k === 'ClientToken');
      if (!harmless && !replays.admit(verified.signature, verified.validUntil, now().getTime())) {
        throw new VbsError('AuthFailure', 'This signed request was already received; sign each request anew.');
      }
      // DryRun: authenticated and a known action; EC2 says it would have been tried, and nothing runs.
      if (pairs.some(([k, v]) => k === 'DryRun' && /^true$/i.test(v))) {
        throw new VbsError('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.');
      }
      const callCtx = ctx;
      let checked = false;
      const invoke = async (operation: string, input: XmlRecord): Promise<XmlRecord> => {
        // Every parameter is read before anything is called: an unknown one changes nothing.
        if (!checked) params.refuseUnread(action);
        checked = true;
        const handler = Object.hasOwn(opts.handlers, operation) ? opts.handlers[operation] : undefined;
        if (!handler) throw new VbsError('InvalidAction', `The action ${action} is not served by this VBS.`);
        const outcome = { requestId, caller: holder.user, admin: holder.admin, operation, input, ctx: callCtx };
        let output: XmlRecord;
        try {
          output = await handler(input, callCtx);
        } catch (err) {
          recorded = true;
          throw told({ ...outcome, fault: toSafeError(err).code }) ?? err;
        }
        const unrecorded = told({ ...outcome, output });
        if (unrecorded) {
          recorded = true;
          throw unrecorded;
        }
        return output;
      };
      const xml = await op.run(params, invoke, { caller: holder.user, devicePrefix: opts.devicePrefix });
      if (!checked) params.refuseUnread(action);
      res.writeHead(200, { 'content-type': 'text/xml;charset=UTF-8' }).end(response(action, requestId, xml));
      callCtx.log.debug('ok', { action });
    } catch (err) {
      const safe = toSafeError(err);
      const log2 = ctx?.log ?? log.child({ requestId, via: 'ec2' });
      if (safe.code === 'InternalError') log2.error('internal error', { action, err });
      else log2.info('fault', { action, code: safe.code, message: safe.message, ...(safe.cause ? { cause: errorMessage(safe.cause) } : {}) });
      const operation = Object.hasOwn(ACTIONS, action) ? ACTIONS[action]!.operation : undefined;
      const unrecorded = recorded ? undefined : told({ requestId, caller: ctx?.caller, admin: ctx?.admin ?? false, operation: ctx ? operation : undefined, fault: safe.code, ...(ctx ? { ctx } : {}) });
      sendError(res, unrecorded ?? safe, action, requestId);
    }
  }

  return server;
}

function sendError(res: ServerResponse, err: VbsError, action: string, requestId: string): void {
  res.writeHead(errorStatus(err), { 'content-type': 'text/xml;charset=UTF-8', ...(err.code === 'RequestTooLarge' ? { connection: 'close' } : {}) });
  res.end(errorResponse(ec2Code(err, action), err.message, requestId));
}

/** The body, at most `max` bytes; a larger one is RequestTooLarge (and the connection is closed after the answer). */
function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    if (Number(req.headers['content-length'] ?? 0) > max) {
      req.resume();
      return reject(new VbsError('RequestTooLarge', `The request body exceeds ${max} bytes.`));
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) over = true;
      else chunks.push(c);
    });
    req.on('end', () => (over ? reject(new VbsError('RequestTooLarge', `The request body exceeds ${max} bytes.`)) : resolve(Buffer.concat(chunks))));
    req.on('error', reject);
  });
}
