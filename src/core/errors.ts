/**
 * The one registry of VBS fault codes. Every error a user can see is a VbsError
 * with one of these codes; anything else is reported as InternalError and its
 * message stays in our logs (the Cinder "safe message" rule).
 */
export const FAULTS = {
  'InvalidVolume.NotFound': { by: 'Client', http: 500 },
  'InvalidSnapshot.NotFound': { by: 'Client', http: 500 },
  'InvalidAttachment.NotFound': { by: 'Client', http: 500 },
  'InvalidHost.NotFound': { by: 'Client', http: 500 },
  VolumeInUse: { by: 'Client', http: 500 },
  IncorrectState: { by: 'Client', http: 500 },
  InvalidParameterValue: { by: 'Client', http: 500 },
  MissingParameter: { by: 'Client', http: 500 },
  IdempotentParameterMismatch: { by: 'Client', http: 500 },
  MalformedRequest: { by: 'Client', http: 500 },
  RequestTooLarge: { by: 'Client', http: 413 },
  /** The request's body did not arrive in time (src/soap/server.ts). */
  RequestTimeout: { by: 'Client', http: 408 },
  AuthFailure: { by: 'Client', http: 500 },
  UnauthorizedOperation: { by: 'Client', http: 500 },
  InsufficientCapacity: { by: 'Server', http: 500 },
  QuotaExceeded: { by: 'Client', http: 500 },
  // Attach by instance id (issue 9): EC2's codes for the instance form of AttachVolume.
  /** AttachVolume named both an instanceId and a vmmHost/vmId, or neither (DetachVolume: both). */
  InvalidParameterCombination: { by: 'Client', http: 500 },
  /** No configured instance resolver knows the instance (or it is someone else's). */
  'InvalidInstanceID.NotFound': { by: 'Client', http: 500 },
  /** The instance exists but is not running (stopped, paused, terminating...). */
  IncorrectInstanceState: { by: 'Client', http: 500 },
  /** ModifyVolume on a volume whose earlier modification is still in flight (EC2's code). */
  IncorrectModificationState: { by: 'Client', http: 500 },
  /** A host command or a delegate failed; the message says which step and why. */
  OperationFailed: { by: 'Server', http: 500 },
  ServiceUnavailable: { by: 'Server', http: 500 },
  /**
   * A delegate refused a call from an older workflow on the resource than one
   * it already acted on (issue 16: src/delegates/generations.ts). Nothing changed.
   */
  StaleGeneration: { by: 'Client', http: 500 },
  // The EC2 Query API's authentication (issue 18, src/ec2/sigv4.ts): EC2's own codes.
  /** The request carries no signature at all. */
  MissingAuthenticationToken: { by: 'Client', http: 500 },
  /** The signature's parts (Authorization header or X-Amz-* parameters) are malformed or incomplete. */
  IncompleteSignature: { by: 'Client', http: 500 },
  /** The signature is not the one the key's secret makes for this request. */
  SignatureDoesNotMatch: { by: 'Client', http: 500 },
  /** X-Amz-Date is too far from the server's clock, or a presigned request's X-Amz-Expires has passed. */
  RequestExpired: { by: 'Client', http: 500 },
  /** The EC2 API was asked for an Action it does not serve. */
  InvalidAction: { by: 'Client', http: 500 },
  /** An EC2 request with DryRun=true: it was authenticated and would be tried, and is not (EC2's answer). */
  DryRunOperation: { by: 'Client', http: 500 },
  /** Too many image imports at once on a volume delegate (issue 19; EC2's code for a throttled request): nothing was kept, try again. */
  RequestLimitExceeded: { by: 'Server', http: 503 },
  /** A resource would hold more than 50 tags (issue 18; EC2's code). */
  TagLimitExceeded: { by: 'Client', http: 500 },
  InternalError: { by: 'Server', http: 500 },
  /** SOAP's own fault codes (SOAP 1.1 section 4.4.1): faultcode soap:VersionMismatch / soap:MustUnderstand. */
  VersionMismatch: { by: 'VersionMismatch', http: 500 },
  MustUnderstand: { by: 'MustUnderstand', http: 500 },
} as const satisfies Record<string, { by: FaultBy; http: number }>;

/** The SOAP 1.1 faultcode a fault is sent with: whose fault it is, or SOAP's own two codes. */
export type FaultBy = 'Client' | 'Server' | 'VersionMismatch' | 'MustUnderstand';

export type FaultCode = keyof typeof FAULTS;

export function isFaultCode(code: unknown): code is FaultCode {
  return typeof code === 'string' && Object.prototype.hasOwnProperty.call(FAULTS, code);
}

/** An error whose code and message are safe to show to the caller. */
export class VbsError extends Error {
  override readonly name = 'VbsError';
  constructor(
    readonly code: FaultCode,
    message: string,
    options?: { cause?: unknown; requestId?: string },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.requestId = options?.requestId;
  }

  /**
   * The id of the request that failed, as the service that answered logged it
   * (set on faults received from a service, so the CLI can print it).
   */
  readonly requestId: string | undefined;

  get faultBy(): FaultBy {
    return FAULTS[this.code].by;
  }
}

/** Turns any thrown value into something safe to show: VbsErrors pass, the rest hide. */
export function toSafeError(err: unknown): VbsError {
  if (err instanceof VbsError) return err;
  if (isDatabaseUnavailable(err)) {
    // Several fronts share the metadata database: one that cannot reach it, or waited its busy timeout, says retry (another front may answer).
    return new VbsError('ServiceUnavailable', 'The metadata database is busy or cannot be reached; retry shortly.', { cause: err });
  }
  return new VbsError('InternalError', 'An internal error occurred; see the service log.', { cause: err });
}

/** SQLite's answers that say "not now" rather than "wrong": busy or locked past the busy timeout, an I/O error, a full disk. */
const DATABASE_UNAVAILABLE = /^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|PROTOCOL)/;

function isDatabaseUnavailable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return err instanceof Error && err.name === 'SqliteError' && typeof code === 'string' && DATABASE_UNAVAILABLE.test(code);
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
