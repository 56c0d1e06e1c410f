import { readFileSync } from 'node:fs';
import { getProperties } from 'properties-file';
import { parsePattern, type Pattern } from './pattern.js';

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
  ) {}

  static fromFile(file: string): CommandCatalog {
    return CommandCatalog.fromText(readFileSync(file, 'utf8'), file);
  }

  static fromText(text: string, source = '<text>'): CommandCatalog {
    const props = getProperties(text);
    const settings = new Map<string, string>();
    const patterns = new Map<string, Pattern>();
    for (const [key, value] of Object.entries(props)) {
      if (SETTING_KEYS.test(key)) {
        if (key.endsWith('.timeoutMs') && !/^[1-9][0-9]{0,8}$/.test(value.trim())) {
          throw new Error(`commands: ${source}: ${key} must be a whole number of milliseconds, not '${value.trim()}'`);
        }
        settings.set(key, value.trim());
      }
      else patterns.set(key, parsePattern(key, value));
    }
    return new CommandCatalog(source, settings, patterns);
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
const SETTING_KEYS = /^(?:vmm\.adapter|volume\.backend|[a-z]+(?:\.[a-z0-9-]+)+\.(?:timeoutMs|option\.[A-Za-z]+))$/;
