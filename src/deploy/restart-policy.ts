/** How a supervisor paces the restarts of one service. */
export interface RestartPolicy {
  /** Wait before the first restart; each further restart within the window waits twice as long. */
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  /** More restarts than this within `windowMs` is a crash loop: the supervisor gives up. */
  readonly maxRestarts: number;
  readonly windowMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = { initialDelayMs: 500, maxDelayMs: 10_000, maxRestarts: 5, windowMs: 60_000 };

export type RestartDecision = { readonly giveUp: false; readonly delayMs: number; readonly restart: number } | { readonly giveUp: true; readonly restarts: number };

/**
 * The restart history of one service: a sliding window of restart times, so a
 * service that crashed long ago starts again from the short delay, and one
 * that keeps crashing is given up on instead of burning the host.
 */
export class RestartBudget {
  private readonly times: number[] = [];

  constructor(private readonly policy: RestartPolicy = DEFAULT_RESTART_POLICY) {}

  /** Called when the service has stopped unexpectedly (or failed to start again): restart it, or give up. */
  next(now: number): RestartDecision {
    while (this.times.length > 0 && now - this.times[0]! >= this.policy.windowMs) this.times.shift();
    if (this.times.length >= this.policy.maxRestarts) return { giveUp: true, restarts: this.times.length };
    this.times.push(now);
    const restart = this.times.length;
    const delayMs = Math.min(this.policy.maxDelayMs, this.policy.initialDelayMs * 2 ** (restart - 1));
    return { giveUp: false, delayMs, restart };
  }
}
