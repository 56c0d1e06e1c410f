import { createWriteStream, type WriteStream } from 'node:fs';

/** One mutating request a soak client made, as written to requests.jsonl. */
export interface RequestRecord {
  readonly time: string;
  readonly client: number;
  readonly op: string;
  readonly input: Readonly<Record<string, unknown>>;
  /** `ok`, or the fault code (ServiceUnavailable when the front could not be reached). */
  readonly outcome: string;
  readonly message?: string;
  /** The id the call returned or acted on. */
  readonly resource?: string;
  readonly ms: number;
}

/** A JSON-lines file of requests, and the counts the summary reports. */
export class RequestLog {
  private readonly out: WriteStream;
  readonly outcomes = new Map<string, number>();
  readonly internalErrors: RequestRecord[] = [];
  /** Every request, kept for the histories of the resources a violation names. */
  private readonly all: RequestRecord[] = [];
  total = 0;

  constructor(file: string) {
    this.out = createWriteStream(file);
  }

  add(r: RequestRecord): void {
    this.total++;
    this.all.push(r);
    this.outcomes.set(r.outcome, (this.outcomes.get(r.outcome) ?? 0) + 1);
    // Never an expected outcome: a bug to look at, even when the state is consistent.
    if (r.outcome === 'InternalError') this.internalErrors.push(r);
    this.out.write(`${JSON.stringify(r)}\n`);
  }

  /** The requests that named `id` (as input or as what they returned), in order. */
  historyOf(id: string): RequestRecord[] {
    return this.all.filter((r) => r.resource === id || Object.values(r.input).includes(id));
  }

  close(): Promise<void> {
    return new Promise((r) => this.out.end(r));
  }
}
