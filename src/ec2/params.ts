import { VbsError } from '../core/errors.js';

/**
 * An EC2 Query request's parameters (issue 18): `Name=value` pairs from the
 * form body or the query string, with lists flattened and 1-indexed
 * (`VolumeId.1`, `Filter.1.Name`, `Filter.1.Value.1`,
 * `TagSpecification.1.Tag.1.Key`). Operations read what they take; any
 * parameter left unread is refused by name (EC2's UnknownParameter), so a
 * misspelt option never silently means nothing.
 */

/** Parameters one request may carry (a 1 MiB body parses in linear time; this bounds what follows). */
export const MAX_PARAMETERS = 5_000;
/** The highest list index accepted (EC2's lists stop at 1000). */
export const MAX_INDEX = 1_000;
/** Parameters that belong to the protocol, not to an operation. */
const PROTOCOL = new Set(['Action', 'Version', 'X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Date', 'X-Amz-Expires', 'X-Amz-SignedHeaders', 'X-Amz-Signature']);

export class Params {
  private readonly read = new Set<string>();

  private constructor(
    private readonly values: ReadonlyMap<string, string>,
    private readonly prefix = '',
    private readonly root?: Params,
  ) {}

  /** The request's parameters; a name given twice is refused (which value was meant is unknowable). */
  static from(pairs: Iterable<[string, string]>): Params {
    const values = new Map<string, string>();
    let n = 0;
    for (const [name, value] of pairs) {
      if (++n > MAX_PARAMETERS) throw new VbsError('InvalidParameterValue', `A request carries at most ${MAX_PARAMETERS} parameters.`);
      if (values.has(name)) throw new VbsError('InvalidParameterValue', `The parameter ${name.slice(0, 64)} is given more than once.`);
      values.set(name, value);
    }
    return new Params(values);
  }

  get action(): string | undefined {
    return this.values.get('Action');
  }

  get version(): string | undefined {
    return this.values.get('Version');
  }

  private mark(full: string): void {
    (this.root ?? this).read.add(full);
  }

  /** A single value, or undefined when absent. */
  str(name: string): string | undefined {
    const full = this.prefix + name;
    this.mark(full);
    return this.values.get(full);
  }

  /** A whole number (EC2's Integer), or undefined when absent. */
  int(name: string): number | undefined {
    const s = this.str(name);
    if (s === undefined) return undefined;
    if (!/^-?[0-9]{1,10}$/.test(s)) throw new VbsError('InvalidParameterValue', `Value (${s.slice(0, 32)}) for parameter ${name} is invalid. Expected an integer.`);
    return Number(s);
  }

  /** EC2's Boolean: true or false (any case); absent: undefined. */
  bool(name: string): boolean | undefined {
    const s = this.str(name);
    if (s === undefined) return undefined;
    if (/^true$/i.test(s)) return true;
    if (/^false$/i.test(s)) return false;
    throw new VbsError('InvalidParameterValue', `Value (${s.slice(0, 32)}) for parameter ${name} is invalid. Expected true or false.`);
  }

  /** `Name.1`, `Name.2`, ...: the values in index order. */
  list(name: string): string[] {
    return [...this.indexes(name)].map(([i]) => this.str(`${name}.${i}`)!);
  }

  /** `Name.1.X`, `Name.1.Y`, `Name.2.X`, ...: one view per index, in order, reading X and Y. */
  groups(name: string): Params[] {
    return [...this.indexes(name)].map(([i]) => new Params(this.values, `${this.prefix}${name}.${i}.`, this.root ?? this));
  }

  /** The indexes used under `Name.`: whole numbers 1..MAX_INDEX, sorted. */
  private indexes(name: string): Map<number, true> {
    const start = `${this.prefix}${name}.`;
    const found = new Map<number, true>();
    for (const full of this.values.keys()) {
      if (!full.startsWith(start)) continue;
      const rest = full.slice(start.length);
      const index = rest.split('.', 1)[0]!;
      if (!/^[1-9][0-9]{0,3}$/.test(index) || Number(index) > MAX_INDEX) {
        throw new VbsError('InvalidParameterValue', `The parameter ${full.slice(0, 64)} has an index outside 1-${MAX_INDEX}.`);
      }
      found.set(Number(index), true);
    }
    return new Map([...found.entries()].sort(([a], [b]) => a - b));
  }

  /** After an operation read its parameters: one it did not read is unknown to it. */
  refuseUnread(action: string): void {
    for (const name of this.values.keys()) {
      if (PROTOCOL.has(name) || this.read.has(name)) continue;
      throw new VbsError('InvalidParameterValue', `The parameter ${name.slice(0, 64)} is not recognized by ${action}.`);
    }
  }
}
