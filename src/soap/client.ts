import { Agent, request } from 'node:https';
import { VbsError, isFaultCode, errorMessage } from '../core/errors.js';
import { failureOutcome } from '../core/outcome.js';
import { REQUEST_ID_HEADER, currentRequestId } from '../core/request-context.js';
import { currentFence, FENCED_BEFORE_SEND, FENCED_IN_FLIGHT } from '../core/claim-fence.js';
import type { ServiceDefinition } from './schema.js';
import type { TlsMaterial } from './server.js';
import { XMLParser } from 'fast-xml-parser';
import { decodeFields, encodeFields, envelope, parseEnvelope, RESPONSE_LIMITS, type Record as XmlRecord } from './xml.js';

export interface SoapClientOptions {
  readonly def: ServiceDefinition;
  /** The service URL, e.g. https://127.0.0.1:8443/vbs */
  readonly url: string;
  /**
   * How errors name the service (a delegate's configured name): users see
   * it; the address stays in the error's cause, for the log. Default: the
   * service's name (VBS, VolumeDelegate, VmmDelegate).
   */
  readonly name?: string;
  readonly tls: TlsMaterial;
  readonly timeoutMs?: number;
  /**
   * A new connection not established (TCP and TLS) by then is given up as
   * not delivered (code ECONNECTTIMEOUT): nothing was sent, so a caller with
   * another front to try may try it. Default: only the call's timeout.
   */
  readonly connectTimeoutMs?: number;
  readonly maxResponseBytes?: number;
}

/** The socket error code of a connection not established within connectTimeoutMs (src/core/outcome.ts: not delivered). */
export const CONNECT_TIMEOUT_CODE = 'ECONNECTTIMEOUT';

const faultParser = new XMLParser({ removeNSPrefix: true, parseTagValue: false, ignoreAttributes: true, processEntities: true, htmlEntities: false });

/**
 * A keep-alive mutual-TLS SOAP client for our own services (the CLI to the
 * front, the front to its delegates). Faults come back as VbsError with the
 * service's code and the request id it logged them under; a service that
 * cannot be reached is ServiceUnavailable. A call made while serving a
 * request forwards that request's id, so the delegate logs it too.
 */
export class SoapClient {
  private readonly agent: Agent;
  /** New connections only: the one retry after a kept-alive connection went stale. */
  private readonly freshAgent: Agent;
  private readonly def: ServiceDefinition;
  private readonly url: URL;
  private readonly name: string;

  constructor(private readonly opts: SoapClientOptions) {
    this.def = opts.def;
    this.url = new URL(opts.url);
    this.name = opts.name ?? opts.def.name;
    this.agent = new Agent({
      keepAlive: true,
      maxSockets: 16,
      key: opts.tls.key,
      cert: opts.tls.cert,
      ca: opts.tls.ca,
      // Services present certificates for their host names/IPs (SAN): checked.
      rejectUnauthorized: true,
    });
    this.freshAgent = new Agent({ keepAlive: false, key: opts.tls.key, cert: opts.tls.cert, ca: opts.tls.ca, rejectUnauthorized: true });
  }

  async call(operation: string, input: XmlRecord, timeoutMs = this.opts.timeoutMs ?? 30_000): Promise<XmlRecord> {
    const op = this.def.operations[operation];
    if (!op) throw new Error(`${this.def.name} has no operation ${operation}`);
    const body = envelope(this.def.namespace, `<tns:${operation}>${encodeFields(this.def, op.input, input)}</tns:${operation}>`);
    const { status, text, requestId } = await this.postOnLiveConnection(operation, body, timeoutMs);
    if (status !== 200) throw parseFault(text, status, this.name, requestId);
    let parsed;
    try {
      parsed = parseEnvelope(text, RESPONSE_LIMITS);
    } catch (err) {
      throw new VbsError('ServiceUnavailable', `${this.name} answered with a malformed SOAP response.`, { cause: err, requestId });
    }
    if (parsed.name !== `${operation}Response`) throw new VbsError('ServiceUnavailable', `${this.name} answered ${parsed.name.slice(0, 64)} to ${operation}.`, { requestId });
    try {
      return decodeFields(this.def, op.output, parsed.content, parsed.name);
    } catch (err) {
      // The service broke its own contract: not something the caller did.
      throw new VbsError('ServiceUnavailable', `${this.name} answered ${operation} with an invalid response.`, { cause: err, requestId });
    }
  }

  close(): void {
    this.agent.destroy();
    this.freshAgent.destroy();
  }

  /**
   * A kept-alive connection can be closed by the service (its idle timeout,
   * a restart behind a proxy) just as we write to it: the write then fails
   * with a reset before any answer. That says nothing about the service, so
   * the request is sent once more on a new connection. Should that one fail
   * too, the outcome stays unknown (the service may have read the first
   * request after all): never "not delivered".
   */
  private async postOnLiveConnection(operation: string, body: string, timeoutMs: number): Promise<{ status: number; text: string; requestId?: string }> {
    try {
      return await this.post(operation, body, timeoutMs, this.agent);
    } catch (err) {
      if (!(err instanceof StaleConnectionError)) throw err;
      try {
        return await this.post(operation, body, timeoutMs, this.freshAgent);
      } catch (again) {
        if (again instanceof VbsError && failureOutcome(again) === 'not-delivered') {
          throw new VbsError('ServiceUnavailable', again.message, { cause: err.cause });
        }
        throw again instanceof StaleConnectionError ? again.cause : again;
      }
    }
  }

  private post(operation: string, body: string, timeoutMs: number, agent: Agent): Promise<{ status: number; text: string; requestId?: string }> {
    const forwarded = currentRequestId();
    const max = this.opts.maxResponseBytes ?? 64 * 1024 * 1024;
    // Work run under a claim that may be lost sends nothing more (src/core/claim-fence.ts).
    const fence = currentFence();
    if (fence?.aborted) {
      const cause = Object.assign(new Error(`${this.url.href}: not called, the claim on this work may be lost`), { code: FENCED_BEFORE_SEND });
      return Promise.reject(new VbsError('ServiceUnavailable', `${this.name} was not called: this front may no longer hold the work.`, { cause }));
    }
    return new Promise((resolve, reject) => {
      let answered = false;
      let deadline: NodeJS.Timeout | undefined;
      const req = request(
        this.url,
        {
          method: 'POST',
          agent,
          headers: {
            'content-type': 'text/xml; charset=utf-8',
            soapaction: `"${this.def.namespace}/${operation}"`,
            'content-length': Buffer.byteLength(body),
            ...(forwarded ? { [REQUEST_ID_HEADER]: forwarded } : {}),
          },
        },
        (res) => {
          answered = true;
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > max) {
              req.destroy(new Error('response too large'));
              return;
            }
            chunks.push(c);
          });
          res.on('end', () => {
            clearTimeout(deadline);
            const id = res.headers[REQUEST_ID_HEADER];
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), requestId: typeof id === 'string' ? id : undefined });
          });
          res.on('error', reject);
        },
      );
      // Both bound the call: the socket's idle timeout, and a deadline for the whole call. A socket
      // that is never idle (an answer that trickles in) or never assigned (the pool full) is not
      // bounded by the first, and a call that never ends holds its claim for ever.
      const expire = () => req.destroy(new TimeoutError(timeoutMs, this.url.href));
      req.setTimeout(timeoutMs, expire);
      deadline = setTimeout(expire, timeoutMs);
      req.once('close', () => clearTimeout(deadline));
      if (fence) {
        const cut = () => req.destroy(Object.assign(new Error('cut: the claim on this work may be lost'), { code: FENCED_IN_FLIGHT }));
        fence.addEventListener('abort', cut, { once: true });
        req.once('close', () => fence.removeEventListener('abort', cut));
      }
      const connectMs = this.opts.connectTimeoutMs;
      if (connectMs !== undefined) {
        req.once('socket', (socket) => {
          if (req.reusedSocket || !socket.connecting) return; // a kept-alive connection is already up
          const timer = setTimeout(
            () => req.destroy(Object.assign(new Error(`no connection within ${connectMs} ms`), { code: CONNECT_TIMEOUT_CODE })),
            connectMs,
          );
          // The request is written only once TLS is up: before that, nothing was sent.
          socket.once('secureConnect', () => clearTimeout(timer));
          socket.once('close', () => clearTimeout(timer));
        });
      }
      req.on('error', (err) => {
        clearTimeout(deadline);
        // Users read the service's name; its address and the socket's error
        // are in the cause, which the service logs under the request id.
        const timedOut = err instanceof TimeoutError;
        const cause = timedOut ? err : Object.assign(new Error(`${this.url.href}: ${errorMessage(err)}`, { cause: err }), { code: (err as { code?: string }).code });
        const failure = new VbsError('ServiceUnavailable', `${this.name} ${timedOut ? `did not answer within ${timeoutMs} ms` : 'could not be reached'}.`, { cause });
        reject(!timedOut && !answered && req.reusedSocket && isResetCode((err as { code?: string }).code) ? new StaleConnectionError(failure) : failure);
      });
      req.end(body);
    });
  }
}

/** A kept-alive connection reset before any answer: retried once on a new connection (see postOnLiveConnection). */
class StaleConnectionError extends Error {
  constructor(override readonly cause: VbsError) {
    super(cause.message);
  }
}

function isResetCode(code: string | undefined): boolean {
  return code === 'ECONNRESET' || code === 'EPIPE';
}

/** The service took longer than the call's timeout: whether it acted is unknown. */
export class TimeoutError extends Error {
  constructor(ms: number, url?: string) {
    super(`timeout after ${ms} ms${url ? ` calling ${url}` : ''}`);
  }
}

export function parseFault(text: string, status: number, name: string, headerId: string | undefined): VbsError {
  try {
    const doc = faultParser.parse(text);
    const fault = doc?.Envelope?.Body?.Fault;
    const code = fault?.detail?.VbsFault?.code ?? fault?.faultstring;
    const message = fault?.detail?.VbsFault?.message ?? String(fault?.faultstring ?? '');
    const requestId = fault?.detail?.VbsFault?.requestId ?? headerId;
    if (isFaultCode(code)) return new VbsError(code, String(message), { requestId: requestId === undefined ? undefined : String(requestId) });
  } catch {
    // fall through
  }
  return new VbsError('ServiceUnavailable', `${name} answered HTTP ${status} without a VBS fault.`, { requestId: headerId });
}
