import { setTimeout as delay } from 'node:timers/promises';
import { Mutex } from '../core/mutex.js';
import { DEFAULT_RESTART_POLICY, RestartBudget, type RestartPolicy } from './restart-policy.js';
import type { ServiceHandle } from './service-process.js';

/** A service the supervisor keeps running. */
export interface SupervisedService {
  readonly name: string;
  /** Its log, named in messages. */
  readonly logFile: string;
  /** Starts one process of it and resolves once it serves; rejects if it cannot, or when `abort` fires first (the process is then stopped). */
  start(abort: AbortSignal): Promise<ServiceHandle>;
  /**
   * Services that must be restarted after this one is (they hold state it
   * lost: the volume delegate puts back the targets a restarted tgtd forgot).
   */
  readonly dependents?: readonly string[];
}

export interface SupervisorEvents {
  /** One line for the operator (the supervisor's stderr). */
  report(line: string): void;
  /** A structured line in the service's own log. */
  log(service: string, level: 'info' | 'warn' | 'error', msg: string, fields: object): void;
}

/**
 * Keeps a set of services running: one that stops unexpectedly (a crash, a
 * kill -9, the OOM killer) is started again after a backoff, its dependents
 * after it; one that keeps dying is given up on, and then everything stops.
 * Starts are serialized, so a dependency is always up again before a
 * dependent reopens, and stopping never races a restart.
 */
export class Supervisor {
  private readonly running = new Map<string, ServiceHandle>();
  /** Processes being stopped on purpose: their exit is not a crash. */
  private readonly planned = new WeakSet<ServiceHandle>();
  private readonly budgets = new Map<string, RestartBudget>();
  private readonly starts = new Mutex();
  private stopping: Promise<void> | undefined;
  private readonly abort = new AbortController();
  private reportGiveUp: (message: string) => void = () => {};
  /** Resolves with a message when a service is given up on; the caller then stops everything. */
  readonly gaveUp = new Promise<string>((r) => (this.reportGiveUp = r));

  constructor(
    private readonly services: readonly SupervisedService[],
    private readonly events: SupervisorEvents,
    private readonly policy: RestartPolicy = DEFAULT_RESTART_POLICY,
  ) {}

  /** Starts every service in order (a first start that fails stops the others and throws: a configuration fault, not a crash). */
  async startAll(afterEach: (name: string, handle: ServiceHandle) => void = () => {}): Promise<void> {
    for (const svc of this.services) {
      const handle = await this.starts.run(() => this.startOne(svc));
      if (!handle) throw new Error('stopped while starting');
      afterEach(svc.name, handle);
    }
  }

  /** The current process of a service, if it is running. */
  handle(name: string): ServiceHandle | undefined {
    return this.running.get(name);
  }

  /** Stops every service, in reverse order; idempotent. Nothing is restarted after this. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      // A start in progress stops its process and fails; a backoff ends at once.
      this.abort.abort();
      for (const svc of [...this.services].reverse()) {
        const h = this.running.get(svc.name);
        if (!h) continue;
        this.planned.add(h);
        await h.stop();
        this.running.delete(svc.name);
      }
      // Whatever was starting is over (and stopped) once the start lock is free.
      await this.starts.run(async () => {});
    })();
    return this.stopping;
  }

  private serviceNamed(name: string): SupervisedService {
    const svc = this.services.find((s) => s.name === name);
    if (!svc) throw new Error(`no service ${name}`);
    return svc;
  }

  /** Starts one process and watches it; undefined when the supervisor stopped meanwhile. */
  private async startOne(svc: SupervisedService): Promise<ServiceHandle | undefined> {
    if (this.stopping) return undefined;
    const handle = await svc.start(this.abort.signal);
    if (this.stopping) {
      await handle.stop();
      return undefined;
    }
    this.running.set(svc.name, handle);
    void handle.exited.then((how) => {
      if (this.stopping || this.planned.has(handle) || this.running.get(svc.name) !== handle) return;
      this.running.delete(svc.name);
      this.events.report(`vbs up: the ${svc.name} service (PID ${handle.pid}) stopped unexpectedly (${how})`);
      this.events.log(svc.name, 'error', 'service stopped unexpectedly', { service: svc.name, servicePid: handle.pid, how });
      void this.recover(svc, how);
    });
    return handle;
  }

  /** Restarts a service that died, with backoff, until it serves again or its restart budget is spent. */
  private async recover(svc: SupervisedService, how: string): Promise<void> {
    const budget = this.budgets.get(svc.name) ?? new RestartBudget(this.policy);
    this.budgets.set(svc.name, budget);
    for (;;) {
      const decision = budget.next(Date.now());
      if (decision.giveUp) return this.giveUp(svc, how, decision.restarts);
      this.events.report(`vbs up: restarting the ${svc.name} service in ${decision.delayMs / 1000} s (restart ${decision.restart} of at most ${this.policy.maxRestarts} within ${this.policy.windowMs / 1000} s)`);
      this.events.log(svc.name, 'warn', 'restarting the service', { service: svc.name, delayMs: decision.delayMs, restart: decision.restart });
      try {
        await delay(decision.delayMs, undefined, { signal: this.abort.signal });
      } catch {
        return; // stopping
      }
      try {
        await this.starts.run(() => this.restartWithDependents(svc));
        return;
      } catch (err) {
        if (this.stopping) return;
        how = (err as Error).message;
        this.events.report(`vbs up: the ${svc.name} service did not start again: ${how}`);
        this.events.log(svc.name, 'error', 'service did not start again', { service: svc.name, message: how });
      }
    }
  }

  /** Under the start lock: the service, then each running dependent stopped and started again after it. */
  private async restartWithDependents(svc: SupervisedService): Promise<void> {
    const handle = await this.startOne(svc);
    if (!handle) return;
    this.reportBack(svc.name, handle);
    for (const name of svc.dependents ?? []) {
      const old = this.running.get(name);
      // A dependent that is down has a recovery of its own under way; it waits for this lock.
      if (!old) continue;
      const dep = this.serviceNamed(name);
      this.events.report(`vbs up: restarting the ${name} service after the ${svc.name} service`);
      this.events.log(name, 'info', 'restarting the service after a service it depends on', { service: name, after: svc.name });
      this.planned.add(old);
      await old.stop();
      this.running.delete(name);
      try {
        const again = await this.startOne(dep);
        if (again) this.reportBack(name, again);
      } catch (err) {
        const how = (err as Error).message;
        this.events.report(`vbs up: the ${name} service did not start again: ${how}`);
        void this.recover(dep, how);
      }
    }
  }

  private reportBack(name: string, handle: ServiceHandle): void {
    this.events.report(`vbs up: the ${name} service is back (PID ${handle.pid}${handle.url ? `, ${handle.url}` : ''})`);
    this.events.log(name, 'info', 'service restarted', { service: name, servicePid: handle.pid, url: handle.url });
  }

  private giveUp(svc: SupervisedService, how: string, restarts: number): void {
    if (this.stopping) return;
    const message =
      `the ${svc.name} service keeps stopping (restarted ${restarts} times within ${this.policy.windowMs / 1000} s; last: ${how}); ` +
      `giving up and stopping every service. Its log: ${svc.logFile}`;
    this.events.log(svc.name, 'error', 'giving up on the service', { service: svc.name, how, restarts });
    this.reportGiveUp(message);
  }
}
