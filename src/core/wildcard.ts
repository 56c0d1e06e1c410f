import { VbsError } from './errors.js';

/**
 * EC2's wildcards in filter values (issue 18): `*` matches any run of
 * characters (none too), `?` exactly one, and a backslash makes the next
 * character literal (`\*amazon\?\\` is the literal `*amazon?\`). A value
 * with no unescaped wildcard is an exact value (its escapes removed); one
 * with wildcards becomes a Wildcard, matched in SQL by SQLite's GLOB — never a
 * regular expression built from the caller's text. GLOB's own special
 * characters are bracketed, so nothing of the value is read as GLOB syntax
 * but EC2's two wildcards. GLOB, like EC2, is case-sensitive and counts
 * characters, not bytes.
 *
 * The cost is bounded: a pattern holds at most MAX_PATTERN_CHARS characters
 * and MAX_STARS stars (runs of stars are one), and each filter at most 100
 * values (src/front/query.ts), against columns of at most a few hundred
 * characters.
 */

export const MAX_PATTERN_CHARS = 512;
export const MAX_STARS = 8;

export class Wildcard {
  constructor(
    /** The SQLite GLOB pattern. */
    readonly glob: string,
    /** The value as the caller wrote it. */
    readonly source: string,
  ) {}

  /** Distinct from any exact value: page tokens are bound to the filters, and a pattern is not its text. */
  toString(): string {
    return `wildcard:${this.source}`;
  }
}

export type FilterValue = string | number | Wildcard;

/** GLOB's special characters, each as a one-character class that matches it literally. */
const GLOB_LITERAL: Readonly<Record<string, string>> = { '*': '[*]', '?': '[?]', '[': '[[]' };

/**
 * An EC2 filter value: the exact string it means (escapes removed), or a
 * Wildcard when it holds an unescaped `*` or `?`. A trailing lone backslash
 * stands for itself.
 */
export function parseFilterValue(raw: string, param: string): string | Wildcard {
  let literal = '';
  let glob = '';
  let wild = false;
  let stars = 0;
  let afterStar = false;
  const chars = [...raw];
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    const star = c === '*';
    if (star && !afterStar) {
      // A run of stars is one star: the same matches, and no extra cost.
      stars++;
      glob += '*';
    }
    wild ||= star;
    afterStar = star;
    if (star) continue;
    if (c === '\\' && i + 1 < chars.length) {
      const next = chars[++i]!;
      literal += next;
      glob += GLOB_LITERAL[next] ?? next;
    } else if (c === '?') {
      wild = true;
      glob += '?';
    } else {
      literal += c;
      glob += GLOB_LITERAL[c] ?? c;
    }
  }
  if (!wild) return literal;
  if (chars.length > MAX_PATTERN_CHARS) {
    throw new VbsError('InvalidParameterValue', `Value for parameter ${param} is invalid: a pattern holds at most ${MAX_PATTERN_CHARS} characters.`);
  }
  if (stars > MAX_STARS) throw new VbsError('InvalidParameterValue', `Value for parameter ${param} is invalid: a pattern holds at most ${MAX_STARS} wildcards *.`);
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(raw)) throw new VbsError('InvalidParameterValue', `Value for parameter ${param} is invalid: it holds a control character.`);
  return new Wildcard(glob, raw);
}
