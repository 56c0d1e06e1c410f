import type { CommandRunner } from '../../commands/runner.js';

/** One LV as `lvs` reports it. */
export interface LvInfo {
  name: string;
  sizeBytes: number;
  origin?: string;
  attr: string;
}

/** Parses `lvs --noheadings --units b --nosuffix --separator , -o lv_name,lv_size,origin,lv_attr`. */
export function parseLvs(stdout: string): LvInfo[] {
  const out: LvInfo[] = [];
  for (const line of stdout.split('\n')) {
    const t = line.trim();
    if (!t) continue;
    const cols = t.split(',').map((c) => c.trim());
    if (cols.length !== 4) throw new Error(`lvs: unexpected line ${JSON.stringify(t)}`);
    const [name, size, origin, attr] = cols as [string, string, string, string];
    if (!/^[0-9]+$/.test(size)) throw new Error(`lvs: size is not a number of bytes: ${JSON.stringify(size)}`);
    out.push({ name, sizeBytes: Number(size), ...(origin ? { origin } : {}), attr });
  }
  return out;
}

/** Parses `vgs --noheadings --units b --nosuffix --separator , -o vg_size,vg_free <vg>`. */
export function parseVgs(stdout: string): { sizeBytes: number; freeBytes: number } {
  const lines = stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  const m = lines.length === 1 ? /^([0-9]+),([0-9]+)$/.exec(lines[0]!) : null;
  if (!m) throw new Error(`vgs: unexpected output ${JSON.stringify(stdout.slice(0, 200))}`);
  return { sizeBytes: Number(m[1]), freeBytes: Number(m[2]) };
}

/**
 * The volume group through the volume.lvm.* patterns. With `sim`, each key's
 * `.sim` variant runs instead (the host simulator), where there is one.
 */
export class LvmTools {
  constructor(
    private readonly runner: CommandRunner,
    readonly vg: string,
    private readonly variant: 'sim' | undefined,
  ) {}

  private run(key: string, params: Record<string, string | number>) {
    return this.runner.run(key, { vg: this.vg, ...params }, this.variant);
  }

  async list(): Promise<LvInfo[]> {
    return parseLvs((await this.run('volume.lvm.list', {})).stdout);
  }

  async vgSpace(): Promise<{ sizeBytes: number; freeBytes: number }> {
    return parseVgs((await this.run('volume.lvm.vgs', {})).stdout);
  }

  /** The device (or, simulated, the file) behind an LV. */
  async path(lv: string): Promise<string> {
    const p = (await this.run('volume.lvm.path', { lv })).stdout.trim();
    if (!p.startsWith('/') || p.includes('\n')) throw new Error(`volume.lvm.path printed ${JSON.stringify(p.slice(0, 200))}`);
    return p;
  }

  async create(lv: string, bytes: number): Promise<void> {
    await this.run('volume.lvm.create', { lv, bytes });
  }

  async snapshot(lv: string, origin: string, bytes: number): Promise<void> {
    await this.run('volume.lvm.snapshot', { lv, origin, bytes });
  }

  async rename(lv: string, newLv: string): Promise<void> {
    await this.run('volume.lvm.rename', { lv, newLv });
  }

  async remove(lv: string): Promise<void> {
    await this.run('volume.lvm.remove', { lv });
  }

  async copyChunk(source: string, path: string, offsetMiB: number, countMiB: number): Promise<void> {
    await this.run('volume.lvm.copy', { source, path, offsetMiB, countMiB });
  }

  async thinCreate(lv: string, pool: string, bytes: number): Promise<void> {
    await this.run('volume.lvm.thin.create', { lv, pool, bytes });
  }

  async thinSnapshot(lv: string, origin: string): Promise<void> {
    await this.run('volume.lvm.thin.snapshot', { lv, origin });
  }

  async thinResize(lv: string, bytes: number): Promise<void> {
    await this.run('volume.lvm.thin.resize', { lv, bytes });
  }
}
