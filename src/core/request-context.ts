import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * The request a piece of work is done for. The SOAP server runs each request
 * inside `requestScope`, so everything that request starts (a workflow that
 * outlives the response, a call to a delegate) still knows its id: the
 * logger stamps it on every line and the SOAP client forwards it, so one id
 * finds a user's request in the logs of every service it touched.
 */
export interface RequestScope {
  readonly requestId: string;
  /** When the request arrived (src/core/metrics.ts stopwatch), for its latency metric. */
  readonly elapsed?: () => number;
}

export const requestScope = new AsyncLocalStorage<RequestScope>();

export function currentRequestId(): string | undefined {
  return requestScope.getStore()?.requestId;
}

/** The HTTP header a request id travels in, both ways. */
export const REQUEST_ID_HEADER = 'x-vbs-request-id';

/** What an id received from another service may look like (ours are UUIDs). */
export const REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
