import { VbsError } from '../core/errors.js';

/** A zone as the front's configuration names it: a group of volume delegates. */
export interface ZoneConfig {
  readonly name: string;
  readonly volumeDelegates: readonly string[];
}

/** The region and zone of a deployment that configures none: every volume delegate in one zone. */
export const DEFAULT_REGION = 'vbs-1';

/**
 * Availability zones (issue 18): each is a group of volume delegates. A
 * volume is created on a delegate of the zone asked for (in turn), and a
 * volume made from a snapshot stays on the snapshot's delegate, so in its
 * zone. Without `zones` in the configuration there is one zone holding every
 * delegate. A delegate belongs to one zone.
 */
/**
 * EC2's zone states (DescribeAvailabilityZones' zoneState): a zone whose
 * volume delegates all answer is `available`; one with some not answering is
 * `impaired` (volumes are still created, on those that answer); one with none
 * answering is `unavailable`, and CreateVolume there is refused.
 */
export type ZoneState = 'available' | 'impaired' | 'unavailable';

export interface ZoneStatus {
  readonly zoneName: string;
  readonly state: ZoneState;
  /** Why it is not available, for EC2's messageSet; empty when it is. */
  readonly messages: readonly string[];
}

export class Zones {
  private readonly byDelegate = new Map<string, string>();
  private readonly members = new Map<string, readonly string[]>();
  private readonly turn = new Map<string, number>();
  /** Whether a volume delegate is down (the front's health probe); until told, every delegate is up. */
  private isDown: (delegate: string) => boolean = () => false;

  constructor(
    readonly region: string,
    delegates: readonly string[],
    zones: readonly ZoneConfig[] | undefined,
  ) {
    const groups = zones?.length ? zones : [{ name: `${region}a`, volumeDelegates: delegates }];
    for (const z of groups) {
      if (this.members.has(z.name)) throw new Error(`zones: ${z.name} is configured twice`);
      for (const d of z.volumeDelegates) {
        if (!delegates.includes(d)) throw new Error(`zones: ${z.name} names ${d}, which is not among volumeDelegates`);
        if (this.byDelegate.has(d)) throw new Error(`zones: the volume delegate ${d} is in two zones`);
        this.byDelegate.set(d, z.name);
      }
      this.members.set(z.name, [...z.volumeDelegates]);
    }
    const orphan = delegates.find((d) => !this.byDelegate.has(d));
    if (orphan) throw new Error(`zones: the volume delegate ${orphan} is in no zone`);
  }

  /** Volumes recorded before zones existed get their delegate's zone (run once at start). */
  backfill(db: import('../db/database.js').Db): void {
    const set = db.prepare('UPDATE volumes SET availability_zone = ? WHERE availability_zone IS NULL AND delegate = ?');
    const rest = db.prepare('UPDATE volumes SET availability_zone = ? WHERE availability_zone IS NULL');
    db.transaction(() => {
      for (const [delegate, zone] of this.byDelegate) set.run(zone, delegate);
      rest.run(this.names()[0]!);
    }).immediate();
  }

  names(): string[] {
    return [...this.members.keys()];
  }

  /** The zone of a delegate (every configured delegate has one; a delegate no longer configured: the first zone). */
  zoneOf(delegate: string): string {
    return this.byDelegate.get(delegate) ?? this.names()[0]!;
  }

  /** Checks that a zone exists: an unknown name is the caller's mistake. */
  known(zone: string): string {
    if (!this.members.has(zone)) {
      throw new VbsError('InvalidParameterValue', `Value for parameter availabilityZone is invalid: ${zone} is not a zone of this VBS; zones: ${this.names().join(', ')}.`);
    }
    return zone;
  }

  /** Asks the named delegates again, now (the health probe's own call); until told, nothing is asked. */
  private recheck: (delegates: readonly string[]) => Promise<void> = async () => {};

  /**
   * Where delegates' health comes from (src/front/health.ts), read at each
   * question, and how to look again before refusing on it.
   */
  watch(isDown: (delegate: string) => boolean, recheck?: (delegates: readonly string[]) => Promise<void>): void {
    this.isDown = isDown;
    if (recheck) this.recheck = recheck;
  }

  /**
   * pick(), but a zone the last probe saw wholly down is looked at again
   * before the create is refused: a delegate that restarted a moment ago is
   * up, and the probe's last answer is up to a probe interval old.
   */
  async pickChecked(zone: string | undefined): Promise<{ delegate: string; zone: string }> {
    if (this.seenDown(zone)) {
      const names = zone === undefined ? this.names() : [this.known(zone)];
      await this.recheck(names.flatMap((z) => this.members.get(z) ?? []));
    }
    return this.pick(zone);
  }

  /** Whether the last probe saw every delegate that could take this create down (then pickChecked looks again). */
  seenDown(zone: string | undefined): boolean {
    const names = zone === undefined ? this.names() : [this.known(zone)];
    return names.every((z) => !this.up(z).length);
  }

  /** Each zone (or those named), with its state. */
  status(names: readonly string[] = this.names()): ZoneStatus[] {
    return names.map((zoneName) => {
      const members = this.members.get(zoneName) ?? [];
      const down = members.filter((d) => this.isDown(d));
      const state: ZoneState = down.length === 0 ? 'available' : down.length === members.length ? 'unavailable' : 'impaired';
      const messages = down.length ? [`${down.length} of the ${members.length} volume delegates of ${zoneName} do not answer.`] : [];
      return { zoneName, state, messages };
    });
  }

  /**
   * The next delegate of the zone that answers, in turn. Without a zone
   * asked for: the first zone that is not unavailable. A zone none of whose
   * delegates answers takes no volume (EC2: InsufficientVolumeCapacity, try
   * another zone); a delegate that stops answering after it was picked fails
   * the create as before, and it is rolled back.
   */
  pick(zone: string | undefined): { delegate: string; zone: string } {
    const name = zone === undefined ? (this.names().find((z) => this.up(z).length) ?? this.names()[0]!) : this.known(zone);
    const members = this.up(name);
    if (!members.length) {
      throw new VbsError('InsufficientCapacity', `The availability zone ${name} is unavailable: none of its volume delegates answers. Create the volume in another zone, or try again later.`);
    }
    const n = this.turn.get(name) ?? 0;
    this.turn.set(name, n + 1);
    return { delegate: members[n % members.length]!, zone: name };
  }

  /** The zone's delegates that answer. */
  private up(zone: string): readonly string[] {
    return (this.members.get(zone) ?? []).filter((d) => !this.isDown(d));
  }
}
