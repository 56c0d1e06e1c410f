import { readFileSync } from 'node:fs';
import { getProperties } from 'properties-file';
import { isKnownPlaceholder } from './placeholders.js';
import { parsePattern, type Delivery, type Pattern } from './pattern.js';

/**
 * commands.properties, loaded and checked: every entry whose value is a command
 * becomes a Pattern; plain settings (such as `vmm.adapter = sim`) stay strings.
 * Keys follow `<layer>.<adapter>.<action>[.<mode>]`.
 */
export class CommandCatalog {
  private constructor(
    readonly source: string,
    private readonly settings: ReadonlyMap<string, string>,
    private readonly patterns: ReadonlyMap<string, Pattern>,
    private readonly deliveries: ReadonlyMap<string, Delivery>,
  ) {}

  static fromFile(file: string): CommandCatalog {
    return CommandCatalog.fromText(readFileSync(file, 'utf8'), file);
  }

  static fromText(text: string, source = '<text>'): CommandCatalog {
    const props = getProperties(text);
    const settings = new Map<string, string>();
    const patterns = new Map<string, Pattern>();
    const deliveries = new Map<string, { stdin?: string; env: [string, string][] }>();
    for (const [key, value] of Object.entries(props)) {
      const d = DELIVERY_KEY.exec(key);
      if (d) {
        const [, patternKey, how] = d as unknown as [string, string, string];
        const name = /^<([A-Za-z][A-Za-z0-9]*)>$/.exec(value.trim())?.[1];
        if (!name || !isKnownPlaceholder(name)) throw new Error(`commands: ${source}: ${key} must be one known <placeholder>, not '${value.trim()}'`);
        const entry = deliveries.get(patternKey) ?? { env: [] };
        if (how === 'stdin') entry.stdin = name;
        else entry.env.push([how.slice('env.'.length), name]);
        deliveries.set(patternKey, entry);
        continue;
      }
      if (SETTING_KEYS.test(key)) {
        if (key.endsWith('.timeoutMs') && !/^[1-9][0-9]{0,8}$/.test(value.trim())) {
          throw new Error(`commands: ${source}: ${key} must be a whole number of milliseconds, not '${value.trim()}'`);
        }
        settings.set(key, value.trim());
      }
      else patterns.set(key, parsePattern(key, value));
    }
    for (const patternKey of deliveries.keys()) {
      // A typo in the key would silently deliver nothing.
      if (!patterns.has(patternKey)) throw new Error(`commands: ${source}: ${patternKey}.stdin/.env name no pattern ${patternKey}`);
    }
    return new CommandCatalog(source, settings, patterns, deliveries);
  }

  /** How the pattern `patternKey` (the key actually used, `.sim` or `.r` variants included) gets values outside its words. */
  delivery(patternKey: string): Delivery {
    return this.deliveries.get(patternKey) ?? { env: [] };
  }

  /** Whether the pattern for `key` (and variant) uses `placeholder`, in its words or by delivery. */
  uses(key: string, placeholder: string, variant?: string): boolean {
    const p = this.pattern(key, variant);
    const d = this.delivery(p.key);
    return p.words.flat().some((s) => 'placeholder' in s && s.placeholder === placeholder) || d.stdin === placeholder || d.env.some(([, n]) => n === placeholder);
  }

  setting(key: string): string | undefined {
    return this.settings.get(key);
  }

  has(key: string): boolean {
    return this.patterns.has(key);
  }

  /** The pattern for `key`, preferring a mode-specific variant (`key.r`) when given. */
  pattern(key: string, variant?: string): Pattern {
    const p = (variant && this.patterns.get(`${key}.${variant}`)) || this.patterns.get(key);
    if (!p) throw new Error(`commands: ${this.source} has no pattern ${key}`);
    return p;
  }

  /** Refuses to start a service whose adapter lacks a pattern it will need. */
  requireAll(keys: readonly string[]): void {
    const missing = keys.filter((k) => !this.patterns.has(k));
    if (missing.length) throw new Error(`commands: ${this.source} lacks ${missing.join(', ')}`);
  }
}

/**
 * Keys whose values are settings (a word), not command patterns: the adapter
 * choices, and `<pattern key>.timeoutMs` / `<group>.option.<name>` for keys of
 * any depth (vmm.sim.attach-device.timeoutMs, vmm.xen.iscsi.login.timeoutMs).
 */
/** `<pattern key>.stdin` and `<pattern key>.env.VAR`: how a value reaches a command off its command line (pattern.ts, Delivery). */
const DELIVERY_KEY = /^([a-z]+(?:\.[a-z0-9-]+)+)\.(stdin|env\.[A-Z_][A-Z0-9_]*)$/;

const SETTING_KEYS = /^(?:vmm\.adapter|volume\.backend|[a-z]+(?:\.[a-z0-9-]+)+\.(?:timeoutMs|option\.[A-Za-z]+))$/;
