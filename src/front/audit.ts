import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { CallContext, RequestOutcome } from '../soap/server.js';
import type { Record as XmlRecord, Value } from '../soap/xml.js';
import type { AdminTest } from './access.js';

/**
 * Operations that change nothing: their successes are not audited (their
 * refusals are). Every Describe* operation only reads (the WSDL's naming
 * rule, as EC2's), so a new one is covered without being listed here.
 */
function readOnly(operation: string): boolean {
  return operation.startsWith('Describe');
}
/** Audited arguments are cut short: a refused request may carry anything up to the body limit. */
const MAX_STRING = 256;
const MAX_ITEMS = 50;

/** One line of DIR/audit.log. */
export interface AuditEntry {
  readonly time: string;
  readonly requestId: string;
  /** The verified certificate's common name; null when the caller presented none the CA vouches for now. */
  readonly caller: string | null;
  /**
   * When a certificate was refused (expired, revoked, foreign, not for
   * clients, two names): the name it claims. Not verified: whoever made the
   * certificate chose it.
   */
  readonly unverifiedCaller?: string;
  /** Whether the caller is an administrator (by certificate or by the front's `admins`). */
  readonly admin: boolean;
  /** The owner of the resource an administrator acted on, when not the administrator. */
  readonly onBehalfOf?: string;
  /** null when the request was refused before its body was read. */
  readonly operation: string | null;
  readonly arguments?: Readonly<Record<string, unknown>>;
  /** `ok`, the fault code the caller got, or `HTTP <status>` for an answer that is not SOAP (another path or method). */
  readonly result: string;
  /** The volume or snapshot a create made. */
  readonly resource?: string;
}

/**
 * An append-only file of JSON lines. Each line is one write(2) on a file
 * opened with O_APPEND, made before the request's answer is sent; a write that
 * fails throws, and the SOAP server then answers InternalError rather than
 * leave the request unaudited.
 */
export class AuditFile {
  private readonly fd: number;

  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.fd = openSync(path, 'a', 0o640);
  }

  append(entry: AuditEntry): void {
    const line = Buffer.from(JSON.stringify(entry) + '\n');
    const written = writeSync(this.fd, line);
    if (written !== line.length) throw new Error(`short write to the audit log (${written} of ${line.length} bytes)`);
  }

  close(): void {
    closeSync(this.fd);
  }
}

/**
 * The front's audit trail: which owner an administrator acted for (noted by
 * the access checks during the request) and the line each outcome becomes.
 * No VBS operation takes a secret (identity is the TLS certificate), so
 * arguments are written as decoded, only cut to a bounded size.
 */
export class AuditTrail {
  private readonly actedFor = new WeakMap<CallContext, string>();

  constructor(
    private readonly file: AuditFile | undefined,
    private readonly isAdministrator: AdminTest = (_caller, certificateAdmin) => certificateAdmin,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  /** An administrator acted on `owner`'s resource during this request. */
  actingFor(ctx: CallContext, owner: string): void {
    if (owner !== ctx.caller) this.actedFor.set(ctx, owner);
  }

  /** The SOAP server's beforeAnswer: appends the outcome's line (nothing for a successful read). */
  record(o: RequestOutcome): void {
    if (!this.file) return;
    if (!o.fault && o.operation && readOnly(o.operation)) return;
    const onBehalfOf = o.ctx ? this.actedFor.get(o.ctx) : undefined;
    const resource = o.fault ? undefined : createdId(o.output);
    this.file.append({
      time: this.clock().toISOString(),
      requestId: o.requestId,
      caller: o.caller ?? null,
      ...(o.caller === undefined && o.claimedCaller !== undefined ? { unverifiedCaller: bounded(o.claimedCaller) as string } : {}),
      admin: o.caller !== undefined && this.isAdministrator(o.caller, o.admin),
      ...(onBehalfOf ? { onBehalfOf } : {}),
      operation: o.operation ?? null,
      ...(o.input ? { arguments: bounded(o.input) as Record<string, unknown> } : {}),
      result: o.fault ?? (o.httpStatus !== undefined ? `HTTP ${o.httpStatus}` : 'ok'),
      ...(resource ? { resource } : {}),
    });
  }

  close(): void {
    this.file?.close();
  }
}

/** The id a create made: a snapshot's own id (its record names its source volume too), or a volume's. */
function createdId(output: XmlRecord | undefined): string | undefined {
  const snapshot = output?.snapshot as XmlRecord | undefined;
  const volume = output?.volume as XmlRecord | undefined;
  const id = snapshot && !Array.isArray(snapshot) ? snapshot.snapshotId : volume && !Array.isArray(volume) ? volume.volumeId : undefined;
  return typeof id === 'string' ? id : undefined;
}

function bounded(value: Value | undefined): unknown {
  if (typeof value === 'string') return value.length > MAX_STRING ? `${value.slice(0, MAX_STRING)}…` : value;
  if (Array.isArray(value)) return value.slice(0, MAX_ITEMS).map((v) => bounded(v));
  if (value instanceof Date) return value.toISOString();
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).slice(0, MAX_ITEMS).map(([k, v]) => [k, bounded(v)]));
  return value;
}
