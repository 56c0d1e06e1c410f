import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { CommandCatalog } from '../../../src/commands/catalog.js';
import { silentLogger } from '../../../src/core/log.js';
import { VolumeDelegateConfigSchema, type VolumeDelegateConfig } from '../../../src/config/service-config.js';
import type { VolumeBackend } from '../../../src/delegates/volume/backend.js';
import { openBackend } from '../../../src/delegates/volume/main.js';
import type { CephCluster } from '../../ceph/cluster.js';
import { COMMANDS } from './helpers.js';

const run = promisify(execFile);

export type RbdBackendConfig = Extract<VolumeDelegateConfig['backend'], { type: 'rbd' }>;

export const VOL = (n: number) => `vol-${n.toString(16).padStart(17, '0')}`;
export const SNAP = (n: number) => `snap-${n.toString(16).padStart(17, '0')}`;

/** The rbd back end's configuration for a test cluster's pool, as client.vbs. */
export function rbdConfig(c: CephCluster, over: Partial<RbdBackendConfig> = {}): RbdBackendConfig {
  const parsed = VolumeDelegateConfigSchema.parse({
    role: 'volume-delegate',
    listen: { port: 0 },
    tls: { key: 'k', cert: 'c', ca: 'a' },
    backend: { type: 'rbd', cephConf: c.conf, clientId: 'vbs', keyring: c.vbsKeyring, pool: c.pool, timeoutSec: 5, ...over },
  });
  return parsed.backend as RbdBackendConfig;
}

export interface OpenedRbd {
  backend: VolumeBackend;
  ran: { key: string; argv: readonly string[] }[];
  warnings: string[];
}

/** Opens the back end in this process; `extraCommands` are appended to commands.properties (later keys win). */
export async function openRbd(cfg: RbdBackendConfig, extraCommands = ''): Promise<OpenedRbd> {
  const catalog = CommandCatalog.fromText(`${readFileSync(COMMANDS, 'utf8')}\n${extraCommands}\n`, COMMANDS);
  const ran: OpenedRbd['ran'] = [];
  const warnings: string[] = [];
  const log = {
    ...silentLogger,
    debug: (msg: string, fields?: object) => void (msg === 'run' && ran.push(fields as OpenedRbd['ran'][number])),
    warn: (msg: string) => void warnings.push(msg),
  };
  return { backend: await openBackend(cfg, catalog, log as typeof silentLogger), ran, warnings };
}

/** Every image and snapshot of the pool, as `image` and `image@snap`, sorted (what is really there). */
export async function poolContents(c: CephCluster): Promise<string[]> {
  const rows = JSON.parse((await c.rbd('ls', '-l', '--format', 'json', c.pool)) || '[]') as { image: string; snapshot?: string }[];
  return rows.map((r) => (r.snapshot ? `${r.image}@${r.snapshot}` : r.image)).sort();
}

/** Writes a byte pattern (0x00–0xff) at an offset of an image, through QEMU's rbd driver. */
export async function writePattern(c: CephCluster, image: string, byte: number, offset: number, length = 65536): Promise<void> {
  await run('qemu-io', ['-f', 'raw', '-c', `write -P ${byte} ${offset} ${length}`, target(c, image)], { timeout: 60_000 });
}

/** True when an image (or image@snap) holds the pattern there. */
export async function hasPattern(c: CephCluster, image: string, byte: number, offset: number, length = 65536): Promise<boolean> {
  try {
    await run('qemu-io', ['-f', 'raw', '-r', '-c', `read -P ${byte} ${offset} ${length}`, target(c, image)], { timeout: 60_000 });
    return true;
  } catch {
    return false;
  }
}

function target(c: CephCluster, image: string): string {
  const [name, snap] = image.split('@');
  return `rbd:${c.pool}/${name}${snap ? `@${snap}` : ''}:id=admin:conf=${c.conf}`;
}
