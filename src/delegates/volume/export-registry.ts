import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { VOLUME_ID } from '../../core/ids.js';
import { CHAP_SECRET } from '../../core/chap.js';

/**
 * Which VMM hosts use each exported volume. The target daemon knows the
 * targets but not who they are for, and one target serves every host, so
 * the delegate keeps this itself, in one JSON file written atomically: a
 * restart must not let one host's unexport pull the target from another.
 */
export class ExportRegistry {
  private readonly file: string;
  private hosts: Map<string, string[]>;
  /**
   * Each export's CHAP secret, by `<volumeId> <host>`, in chap.json (0600 in
   * a 0700 folder): a restarted target daemon gets the same accounts back,
   * so hosts still logged in can reconnect (src/core/chap.ts says why it is kept).
   */
  private readonly secretsFile: string;
  private secrets: Map<string, string>;

  constructor(stateDir: string) {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    this.file = join(stateDir, 'exports.json');
    this.hosts = load(this.file);
    this.secretsFile = join(stateDir, 'chap.json');
    this.secrets = loadSecrets(this.secretsFile);
  }

  secretOf(volumeId: string, host: string): string | undefined {
    return this.secrets.get(`${volumeId} ${host}`);
  }

  setSecret(volumeId: string, host: string, secret: string | undefined): void {
    const key = `${volumeId} ${host}`;
    if (this.secrets.get(key) === secret) return;
    if (secret === undefined) this.secrets.delete(key);
    else this.secrets.set(key, secret);
    writeAtomically(this.secretsFile, `${JSON.stringify(Object.fromEntries(this.secrets), null, 2)}\n`);
  }

  /** Forgets every secret of a volume (its target was withdrawn). */
  forgetSecrets(volumeId: string): void {
    const keys = [...this.secrets.keys()].filter((k) => k.startsWith(`${volumeId} `));
    if (!keys.length) return;
    for (const k of keys) this.secrets.delete(k);
    writeAtomically(this.secretsFile, `${JSON.stringify(Object.fromEntries(this.secrets), null, 2)}\n`);
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
    writeAtomically(this.file, `${JSON.stringify(Object.fromEntries(this.hosts), null, 2)}\n`);
  }
}

function writeAtomically(file: string, text: string): void {
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

function loadSecrets(file: string): Map<string, string> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw err;
  }
  const raw = JSON.parse(text) as unknown;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${file}: expected an object`);
  const out = new Map<string, string>();
  for (const [key, secret] of Object.entries(raw)) {
    // The key names the export; the secret itself never goes into a message.
    if (!/^vol-[0-9a-f]{17} \S+$/.test(key) || typeof secret !== 'string' || !CHAP_SECRET.test(secret)) throw new Error(`${file}: bad entry ${JSON.stringify(key)}`);
    out.set(key, secret);
  }
  return out;
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
