import { createWriteStream, type WriteStream } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { DEFAULT_RESTART_POLICY } from '../deploy/restart-policy.js';
import type { SoakClock } from './clock-step.js';
import { SERVICES, type ServiceName, type SoakDeployment } from './deployment.js';
import type { HostHangs } from './hang.js';
import type { Prng } from './prng.js';
import type { ProxyThread } from './proxy-thread.js';
import { childrenOf, cmdline, isDescendantOf, signal } from './processes.js';

/**
 * At most this many of our SIGKILLs per service within the restart policy's
 * window. `vbs up` gives up after DEFAULT_RESTART_POLICY.maxRestarts restarts
 * in that window; we stay two below it, so a restart that fails on its own
 * (or a service that crashes by itself) does not end the deployment because
 * of us.
 */
export const KILLS_PER_WINDOW = DEFAULT_RESTART_POLICY.maxRestarts - 2;
const WINDOW_MS = DEFAULT_RESTART_POLICY.windowMs;
/** The pause between two chaos events, and how long a SIGSTOP lasts. */
const GAP_MS = [800, 3_000] as const;
const PAUSE_MS = [200, 3_000] as const;
/** How far past the front's claim lease a long pause, a clock step forward or a stall goes. */
const PAST_LEASE_MS = [500, 3_000] as const;
/** How far the clock steps back. */
const BACK_MS = [100, 1_000] as const;
/** How often a kill may hit a service that is still starting (it then fails to start, which costs a restart too). */
const START_KILL_CHANCE = 0.2;
/** How long to watch a delegate for a host command to kill. */
const COMMAND_WATCH_MS = 3_000;

export type ChaosKind = 'kill-service' | 'pause-service' | 'kill-command' | 'hang-command' | 'cut-connection' | 'stall-request' | 'step-clock';
type Delegate = 'volume-delegate' | 'vmm-delegate';

/** What the stalls and the clock steps act through, and the limits they go past. */
export interface StallTools {
  /** The proxy in front of each delegate (the front calls the delegate through it). */
  readonly proxies: ReadonlyMap<Delegate, ProxyThread>;
  readonly hangs: HostHangs;
  /** The simulated tools (`tool` or `tool.verb`) a hang may hit. */
  readonly hangKeys: readonly string[];
  readonly clock: SoakClock;
  /** The front's claim lease and call timeout, as the soak configured them. */
  readonly leaseMs: number;
  readonly callTimeoutMs: number;
}

export interface ChaosEvent {
  readonly time: string;
  readonly kind: ChaosKind;
  /** The service it hit; `all` for a clock step (every service reads the same offset file). */
  readonly service: ServiceName | 'all';
  readonly pid?: number;
  /** The host command killed (its command line), or the simulated tool made to hang. */
  readonly command?: string;
  readonly pauseMs?: number;
  /** How long a hang or stall lasts, how long after delivering a request a cut comes at the latest, or a clock step (signed). */
  readonly ms?: number;
  /** Why nothing was signalled (no host command showed up in time). */
  readonly missed?: string;
}

/**
 * The chaos monkey: SIGKILL of a random service, SIGSTOP then SIGCONT after
 * a random pause (sometimes past the claim lease), and SIGKILL of a host
 * command a delegate is running (a child of the delegate's process: hostsim,
 * dd, cp, truncate...). It only signals descendants of the `vbs up` it was
 * given, and keeps a per-service budget of kills inside the restart policy.
 *
 * And stalls, which leave every process running but make the front wait or
 * guess: a simulated host command that hangs past the front's call timeout
 * (then does its work), a connection cut after the request reached the
 * delegate and before its answer, a request held past the call timeout and
 * delivered after its caller gave up, and steps of the services' clock
 * forward past the claim lease (and back a little), so a claim expires while
 * its holder still waits on a call.
 */
export class Chaos {
  private stopping = false;
  private loop: Promise<void> | undefined;
  private stopped: Promise<void> | undefined;
  private readonly wake = new AbortController();
  private readonly killTimes = new Map<ServiceName, number[]>();
  private readonly lastKilledPid = new Map<ServiceName, number>();
  /** Processes we stopped and have not continued yet (continued on stop, whatever happens). */
  private readonly paused = new Set<number>();
  private readonly out: WriteStream;
  readonly events: ChaosEvent[] = [];

  constructor(
    private readonly dep: SoakDeployment,
    private readonly prng: Prng,
    logFile: string,
    private readonly stalls: StallTools,
  ) {
    this.out = createWriteStream(logFile);
  }

  /** A restart the soak itself caused (outside the chaos), counted in the service's kill budget. */
  noteRestart(service: ServiceName, at = Date.now()): void {
    this.killTimes.set(service, [...(this.killTimes.get(service) ?? []), at]);
  }

  /** SIGKILLs delivered: services and host commands. */
  get kills(): number {
    return this.events.filter((e) => (e.kind === 'kill-service' || e.kind === 'kill-command') && !e.missed).length;
  }

  count(kind: ChaosKind, service?: ServiceName): number {
    return this.events.filter((e) => e.kind === kind && !e.missed && (!service || e.service === service)).length;
  }

  start(): void {
    this.loop = this.run();
  }

  /** Ends the chaos: no new event, every paused process continued. */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.stopping = true;
      this.wake.abort();
      try {
        await this.loop;
      } finally {
        for (const pid of this.paused) signal(pid, 'SIGCONT');
        this.paused.clear();
        // Nothing hangs or stalls while the deployment settles (a hang already sleeping ends by itself).
        this.stalls.hangs.clear();
        for (const p of this.stalls.proxies.values()) p.disarm();
        await new Promise<void>((r) => this.out.end(r));
      }
    })();
    return this.stopped;
  }

  private async run(): Promise<void> {
    while (!this.stopping && this.dep.exited === undefined) {
      if (!(await this.sleep(this.prng.int(...GAP_MS)))) return;
      const kind = this.prng.weighted<ChaosKind>({
        'kill-service': 3,
        'pause-service': 2,
        'kill-command': 3,
        'hang-command': 2,
        'cut-connection': 3,
        'stall-request': 2,
        'step-clock': 2,
      });
      const service = this.prng.pick(SERVICES);
      const delegate: Delegate = this.prng.chance(0.5) ? 'volume-delegate' : 'vmm-delegate';
      if (kind === 'kill-service') this.killService(service);
      if (kind === 'pause-service') await this.pauseService(service);
      if (kind === 'kill-command') await this.killCommand(delegate);
      if (kind === 'hang-command') this.hangCommand();
      if (kind === 'cut-connection') this.cutConnection(delegate);
      if (kind === 'stall-request') this.stallRequest(delegate);
      if (kind === 'step-clock') this.stepClock();
    }
  }

  /** Past the call timeout: the front gives up, the command then does its work. */
  private pastTimeout(): number {
    return this.stalls.callTimeoutMs + this.prng.int(...PAST_LEASE_MS);
  }

  private hangCommand(): void {
    // rbd: no simulated tool on either side (real rbd, real QEMU), so nothing to make hang.
    if (!this.stalls.hangKeys.length) return;
    const command = this.prng.pick(this.stalls.hangKeys);
    const ms = this.pastTimeout();
    this.stalls.hangs.hangNext(command, ms);
    this.record({ kind: 'hang-command', service: command.startsWith('xm') || command.startsWith('iscsiadm') ? 'vmm-delegate' : 'volume-delegate', command, ms });
  }

  /** The next request to the delegate is delivered, and its connection cut before the answer (or within `ms` while the delegate works). */
  private cutConnection(service: Delegate): void {
    const ms = this.prng.int(0, this.stalls.callTimeoutMs);
    this.stalls.proxies.get(service)?.arm({ kind: 'cut', afterMs: ms });
    this.record({ kind: 'cut-connection', service, ms });
  }

  /** The next request to the delegate is held past the call timeout, then delivered. */
  private stallRequest(service: Delegate): void {
    const ms = this.pastTimeout();
    this.stalls.proxies.get(service)?.arm({ kind: 'stall', ms });
    this.record({ kind: 'stall-request', service, ms });
  }

  /** Mostly forward past the claim lease (every claim held now has expired), sometimes back a little. */
  private stepClock(): void {
    const ms = this.prng.chance(0.75) ? this.stalls.leaseMs + this.prng.int(...PAST_LEASE_MS) : -this.prng.int(...BACK_MS);
    this.stalls.clock.step(ms);
    this.record({ kind: 'step-clock', service: 'all', ms });
  }

  /** Sleeps, or returns false at once when the chaos is stopped. */
  private async sleep(ms: number): Promise<boolean> {
    try {
      await delay(ms, undefined, { signal: this.wake.signal });
      return true;
    } catch {
      return false;
    }
  }

  private record(e: Omit<ChaosEvent, 'time'>): void {
    const event = { time: new Date().toISOString(), ...e };
    this.events.push(event);
    this.out.write(`${JSON.stringify(event)}\n`);
  }

  /** The service's current process, when it is one of our `vbs up`'s children. */
  private pidOf(service: ServiceName): number | undefined {
    const pid = this.dep.servicePid(service);
    return pid !== undefined && isDescendantOf(pid, this.dep.pid) ? pid : undefined;
  }

  /** SIGKILL, when the budget allows and the service is back from our last kill. */
  private killService(service: ServiceName): void {
    const now = Date.now();
    const recent = (this.killTimes.get(service) ?? []).filter((t) => now - t < WINDOW_MS);
    this.killTimes.set(service, recent);
    if (recent.length >= KILLS_PER_WINDOW) return;
    const pid = this.pidOf(service);
    if (pid === undefined || pid === this.lastKilledPid.get(service)) return; // still restarting
    // Mostly a service that serves; sometimes one still starting (a crash during its recovery).
    if (!this.dep.isReady(pid) && !this.prng.chance(START_KILL_CHANCE)) return;
    if (!signal(pid, 'SIGKILL')) return;
    recent.push(now);
    this.lastKilledPid.set(service, pid);
    this.record({ kind: 'kill-service', service, pid });
  }

  /** SIGSTOP, a random pause, SIGCONT: a service that hangs, then goes on as if nothing happened. */
  private async pauseService(service: ServiceName): Promise<void> {
    const pid = this.pidOf(service);
    if (pid === undefined) return;
    // One pause in three outlasts the claim lease: its claims expire while it is frozen.
    const pauseMs = this.prng.chance(1 / 3) ? this.stalls.leaseMs + this.prng.int(...PAST_LEASE_MS) : this.prng.int(...PAUSE_MS);
    if (!signal(pid, 'SIGSTOP')) return;
    this.paused.add(pid);
    this.record({ kind: 'pause-service', service, pid, pauseMs });
    await this.sleep(pauseMs);
    signal(pid, 'SIGCONT');
    this.paused.delete(pid);
  }

  /**
   * Watches the delegate for a host command (a child of its command helper) for a while and
   * SIGKILLs the first one seen. They live milliseconds, so the children are
   * polled through /proc/PID/task/TID/children, which is cheap.
   */
  private async killCommand(service: 'volume-delegate' | 'vmm-delegate'): Promise<void> {
    const delegate = this.pidOf(service);
    if (delegate === undefined) return;
    const own = cmdline(delegate);
    const end = Date.now() + COMMAND_WATCH_MS;
    while (!this.stopping && Date.now() < end) {
      for (const pid of hostCommandsOf(delegate)) {
        const command = cmdline(pid);
        // A child that still shows its parent's command line (the delegate's, or its helper's) is
        // forked but not yet exec'd: wait for it to become the host command it is meant to be.
        if (!command || command === own || command.includes('command-helper') || !isDescendantOf(pid, this.dep.pid)) continue;
        if (signal(pid, 'SIGKILL')) return this.record({ kind: 'kill-command', service, pid, command });
      }
      await delay(2);
    }
    this.record({ kind: 'kill-command', service, missed: `no host command of ${service} seen within ${COMMAND_WATCH_MS / 1000} s` });
  }
}

/**
 * A delegate's host commands: the children of its command helper
 * (src/commands/command-helper.ts), or its own children while it has none.
 * The helper itself is not a host command: killing it fails every command
 * in flight at once, which is a harsher fault than the one this chaos names.
 */
function hostCommandsOf(delegate: number): number[] {
  return childrenOf(delegate).flatMap((pid) => (cmdline(pid).includes('command-helper') ? childrenOf(pid) : [pid]));
}
