import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { VOLUME_ID } from '../../core/ids.js';

/**
 * Which VMM hosts use each exported volume. The target daemon knows the
 * targets but not who they are for, and one target serves every host, so
 * the delegate keeps this itself, in one JSON file written atomically: a
 * restart must not let one host's unexport pull the target from another.
 */
export class ExportRegistry {
  private readonly file: string;
  private hosts: Map<string, string[]>;

  constructor(stateDir: string) {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    this.file = join(stateDir, 'exports.json');
    this.hosts = load(this.file);
  }

  /** Every volume some host uses, with its hosts. */
  entries(): [string, readonly string[]][] {
    return [...this.hosts];
  }

  hostsOf(volumeId: string): readonly string[] {
    return this.hosts.get(volumeId) ?? [];
  }

  add(volumeId: string, host: string): void {
    const now = this.hostsOf(volumeId);
    if (now.includes(host)) return;
    this.hosts.set(volumeId, [...now, host].sort());
    this.save();
  }

  /** The hosts that would remain without `host` (nothing is changed). */
  othersThan(volumeId: string, host: string): string[] {
    return this.hostsOf(volumeId).filter((h) => h !== host);
  }

  remove(volumeId: string, host: string): void {
    const rest = this.othersThan(volumeId, host);
    if (rest.length === this.hostsOf(volumeId).length) return;
    if (rest.length) this.hosts.set(volumeId, rest);
    else this.hosts.delete(volumeId);
    this.save();
  }

  forget(volumeId: string): void {
    if (this.hosts.delete(volumeId)) this.save();
  }

  private save(): void {
    const tmp = `${this.file}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, `${JSON.stringify(Object.fromEntries(this.hosts), null, 2)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
  }
}

function load(file: string): Map<string, string[]> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw err;
  }
  const raw = JSON.parse(text) as unknown;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${file}: expected an object`);
  const out = new Map<string, string[]>();
  for (const [volumeId, hosts] of Object.entries(raw)) {
    if (!VOLUME_ID.test(volumeId) || !Array.isArray(hosts) || !hosts.every((h) => typeof h === 'string')) {
      throw new Error(`${file}: bad entry ${JSON.stringify(volumeId)}`);
    }
    if (hosts.length) out.set(volumeId, [...(hosts as string[])].sort());
  }
  return out;
}
