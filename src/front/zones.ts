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
export class Zones {
  private readonly byDelegate = new Map<string, string>();
  private readonly members = new Map<string, readonly string[]>();
  private readonly turn = new Map<string, number>();

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

  /** The next delegate of the zone (the first zone when none is asked for), in turn. */
  pick(zone: string | undefined): { delegate: string; zone: string } {
    const name = zone === undefined ? this.names()[0]! : this.known(zone);
    const members = this.members.get(name)!;
    const n = this.turn.get(name) ?? 0;
    this.turn.set(name, n + 1);
    return { delegate: members[n % members.length]!, zone: name };
  }
}
