import { Agent, request } from 'node:https';
import { VbsError, isFaultCode, errorMessage } from '../core/errors.js';
import type { ServiceDefinition } from './schema.js';
import type { TlsMaterial } from './server.js';
import { XMLParser } from 'fast-xml-parser';
import { decodeFields, encodeFields, envelope, parseEnvelope, type Record as XmlRecord } from './xml.js';

export interface SoapClientOptions {
  readonly def: ServiceDefinition;
  /** The service URL, e.g. https://127.0.0.1:8443/vbs */
  readonly url: string;
  readonly tls: TlsMaterial;
  readonly timeoutMs?: number;
  readonly maxResponseBytes?: number;
}

const faultParser = new XMLParser({ removeNSPrefix: true, parseTagValue: false, ignoreAttributes: true });

/**
 * A keep-alive mutual-TLS SOAP client for our own services (the CLI to the
 * front, the front to its delegates). Faults come back as VbsError with the
 * service's code; a service that cannot be reached is ServiceUnavailable.
 */
export class SoapClient {
  private readonly agent: Agent;
  private readonly def: ServiceDefinition;
  private readonly url: URL;

  constructor(private readonly opts: SoapClientOptions) {
    this.def = opts.def;
    this.url = new URL(opts.url);
    this.agent = new Agent({
      keepAlive: true,
      maxSockets: 16,
      key: opts.tls.key,
      cert: opts.tls.cert,
      ca: opts.tls.ca,
      // Services present certificates for their host names/IPs (SAN): checked.
      rejectUnauthorized: true,
    });
  }

  async call(operation: string, input: XmlRecord, timeoutMs = this.opts.timeoutMs ?? 30_000): Promise<XmlRecord> {
    const op = this.def.operations[operation];
    if (!op) throw new Error(`${this.def.name} has no operation ${operation}`);
    const body = envelope(this.def.namespace, `<tns:${operation}>${encodeFields(this.def, op.input, input)}</tns:${operation}>`);
    const { status, text } = await this.post(operation, body, timeoutMs);
    if (status !== 200) throw parseFault(text, status, this.url.host);
    let parsed;
    try {
      parsed = parseEnvelope(text);
    } catch {
      throw new VbsError('ServiceUnavailable', `${this.url.host} answered with a malformed SOAP response.`);
    }
    if (parsed.name !== `${operation}Response`) throw new VbsError('ServiceUnavailable', `${this.url.host} answered ${parsed.name} to ${operation}.`);
    try {
      return decodeFields(this.def, op.output, parsed.content, parsed.name);
    } catch (err) {
      // The service broke its own contract: not something the caller did.
      throw new VbsError('ServiceUnavailable', `${this.url.host} answered ${operation} with an invalid response.`, { cause: err });
    }
  }

  close(): void {
    this.agent.destroy();
  }

  private post(operation: string, body: string, timeoutMs: number): Promise<{ status: number; text: string }> {
    const max = this.opts.maxResponseBytes ?? 64 * 1024 * 1024;
    return new Promise((resolve, reject) => {
      const req = request(
        this.url,
        {
          method: 'POST',
          agent: this.agent,
          headers: {
            'content-type': 'text/xml; charset=utf-8',
            soapaction: `"${this.def.namespace}/${operation}"`,
            'content-length': Buffer.byteLength(body),
          },
        },
        (res) => {
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
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.setTimeout(timeoutMs, () => req.destroy(new TimeoutError(timeoutMs)));
      req.on('error', (err) => {
        const why = err instanceof TimeoutError ? `did not answer within ${timeoutMs} ms` : `could not be reached (${errorMessage(err)})`;
        reject(new VbsError('ServiceUnavailable', `${this.def.name} at ${this.url.host} ${why}.`, { cause: err }));
      });
      req.end(body);
    });
  }
}

/** The service took longer than the call's timeout: whether it acted is unknown. */
export class TimeoutError extends Error {
  constructor(ms: number) {
    super(`timeout after ${ms} ms`);
  }
}

function parseFault(text: string, status: number, host: string): VbsError {
  try {
    const doc = faultParser.parse(text);
    const fault = doc?.Envelope?.Body?.Fault;
    const code = fault?.detail?.VbsFault?.code ?? fault?.faultstring;
    const message = fault?.detail?.VbsFault?.message ?? String(fault?.faultstring ?? '');
    if (isFaultCode(code)) return new VbsError(code, String(message));
  } catch {
    // fall through
  }
  return new VbsError('ServiceUnavailable', `${host} answered HTTP ${status} without a VBS fault.`);
}
