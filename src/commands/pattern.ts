import { VbsError } from '../core/errors.js';
import { checkPlaceholder, isKnownPlaceholder, isSecretPlaceholder } from './placeholders.js';

/**
 * A command-line pattern such as `xm block-attach <vmId> file:<path> <vmDev> <mode>`.
 * It is split into words when loaded; placeholders are filled inside their word,
 * so a value can never add, split or quote words: the result is an argv for
 * execFile, never a string for a shell.
 */
export type Segment = { literal: string } | { placeholder: string };
export interface Pattern {
  readonly key: string;
  readonly text: string;
  readonly words: readonly (readonly Segment[])[];
}

const PLACEHOLDER = /<([A-Za-z][A-Za-z0-9]*)>/g;

export function parsePattern(key: string, text: string): Pattern {
  const trimmed = text.trim();
  if (trimmed === '') throw new Error(`commands: ${key} is empty`);
  if (/["'`\\$|;&<>]/.test(trimmed.replace(PLACEHOLDER, ''))) {
    // Quoting and shell operators would mean something only to a shell; we run none.
    throw new Error(`commands: ${key} uses shell syntax (quotes, $, |, ;, &, redirection), which VBS never interprets`);
  }
  const words = trimmed.split(/\s+/).map((w) => parseWord(key, w));
  const first = words[0]!;
  if (first.length === 1 && 'placeholder' in first[0]! && !['node'].includes(first[0].placeholder)) {
    throw new Error(`commands: ${key} must start with a program, not a value`);
  }
  return { key, text: trimmed, words };
}

function parseWord(key: string, w: string): Segment[] {
  const out: Segment[] = [];
  let last = 0;
  for (const m of w.matchAll(PLACEHOLDER)) {
    const name = m[1]!;
    if (!isKnownPlaceholder(name)) throw new Error(`commands: ${key} uses unknown placeholder <${name}>`);
    if (isSecretPlaceholder(name)) {
      throw new Error(`commands: ${key} puts the secret <${name}> on a command line, where any local user can read it (ps); deliver it with ${key}.stdin = <${name}> or ${key}.env.VAR = <${name}>`);
    }
    if (m.index > last) out.push({ literal: w.slice(last, m.index) });
    out.push({ placeholder: name });
    last = m.index + m[0].length;
  }
  if (last < w.length) out.push({ literal: w.slice(last) });
  return out;
}

export function placeholdersOf(p: Pattern): string[] {
  return p.words.flat().flatMap((s) => ('placeholder' in s ? [s.placeholder] : []));
}

export type Params = Readonly<Record<string, string | number | undefined>>;

/**
 * How a command gets values that are not in its words: `<key>.stdin = <name>`
 * writes one value (and a newline) to its standard input; `<key>.env.VAR =
 * <name>` sets one environment variable (readable only by the same user, in
 * /proc/<pid>/environ, unlike argv). This is the only way a secret reaches a
 * command.
 */
export interface Delivery {
  readonly stdin?: string;
  readonly env: readonly (readonly [variable: string, placeholder: string])[];
}

/**
 * The values a delivery names, checked. A value that was not given is not
 * delivered (the variable stays unset, standard input stays empty): one
 * pattern serves targets with and without CHAP.
 */
export function fillDelivery(d: Delivery, params: Params): { input?: string; env: Record<string, string> } {
  const value = (name: string): string | undefined => {
    const raw = params[name];
    if (raw === undefined) return undefined;
    checkPlaceholder(name, String(raw));
    return String(raw);
  };
  const env: Record<string, string> = {};
  for (const [variable, name] of d.env) {
    const v = value(name);
    if (v !== undefined) env[variable] = v;
  }
  const input = d.stdin === undefined ? undefined : value(d.stdin);
  return { ...(input === undefined ? {} : { input: `${input}\n` }), env };
}

/** Validates every value the pattern needs, then builds the argv. */
export function fillPattern(p: Pattern, params: Params): { file: string; args: string[] } {
  const argv = p.words.map((segments) =>
    segments
      .map((s) => {
        if ('literal' in s) return s.literal;
        const raw = params[s.placeholder];
        if (raw === undefined) {
          throw new VbsError('InternalError', `commands: ${p.key} needs <${s.placeholder}>, which was not given`);
        }
        const value = String(raw);
        checkPlaceholder(s.placeholder, value);
        return value;
      })
      .join(''),
  );
  const [file, ...args] = argv;
  return { file: file!, args };
}
