import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { Field } from './schema.js';
import type { CallContext } from './server.js';
import type { Record as XmlRecord } from './xml.js';

/**
 * An operation whose request body or answer is a byte stream (an image),
 * beside a service's SOAP operations on the same mutual-TLS listener. Why not
 * SOAP: a SOAP body is read whole, parsed and capped (1 MiB) before a handler
 * runs, and an image is gigabytes; why not chunks of SOAP: every chunk would
 * be a request to journal, order and retry, while one streamed PUT is written
 * to disk as it arrives and is cut in one place. The parameters travel in the
 * query string; the answer is a SOAP envelope (`<operation>Response`) or a
 * SOAP fault, so clients read it as they read any operation's.
 */
export interface StreamRoute {
  /** The name the request is recorded under (audit log, metrics) and its answer is called. */
  readonly operation: string;
  readonly method: 'PUT' | 'GET';
  /** The path under the service's, without slashes: `images` serves `<path>/images` and `<path>/images/<rest>`. */
  readonly prefix: string;
  /** The fields of the SOAP answer of a PUT (unused by a GET, whose answer is the bytes). */
  readonly output: readonly Field[];
  handle(call: StreamCall): Promise<StreamAnswer>;
}

export interface StreamCall {
  readonly req: IncomingMessage;
  /** What follows `<path>/<prefix>/` (an id), or '' when nothing does. */
  readonly rest: string;
  readonly query: URLSearchParams;
  readonly ctx: CallContext;
  /** Records the decoded parameters, for the audit log, once they are checked. */
  noteInput(input: XmlRecord): void;
}

/** A record for the SOAP answer, or (GET) the bytes to send and their length. */
export type StreamAnswer = { readonly output: XmlRecord; readonly body?: undefined } | { readonly output: XmlRecord; readonly body: Readable; readonly length: number };

/** The route serving a request's path and method (else one of its path, which answers 405), and the rest of the path after its prefix. */
export function routeOf(routes: readonly StreamRoute[], servicePath: string, pathname: string, method = ''): { route: StreamRoute; rest: string } | undefined {
  const byMethod = [...routes].sort((a, b) => Number(b.method === method) - Number(a.method === method));
  for (const route of byMethod) {
    const base = `${servicePath}/${route.prefix}`;
    if (pathname === base) return { route, rest: '' };
    if (pathname.startsWith(`${base}/`)) {
      const rest = pathname.slice(base.length + 1);
      if (!rest.includes('/')) return { route, rest };
    }
  }
  return undefined;
}
