import type { CommandRunner } from '../../commands/runner.js';
import { runVerified } from '../../commands/verified.js';
import type { Logger } from '../../core/log.js';

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
 *
 * Every change is an "ensure": when its command fails or times out, `lvs`
 * says whether the change is in place (an LV created whole, renamed, gone),
 * and only then is it a failure. An LV found smaller than asked for is
 * half-made: it is removed before the failure is reported.
 */
export class LvmTools {
  constructor(
    private readonly runner: CommandRunner,
    readonly vg: string,
    private readonly variant: 'sim' | undefined,
    private readonly log?: Pick<Logger, 'warn'>,
  ) {}

  private run(key: string, params: Record<string, string | number>) {
    return this.runner.run(key, { vg: this.vg, ...params }, this.variant);
  }

  /** Whether commands.properties can grow LVs (volume.lvm.resize): older files lack it. */
  get canExtend(): boolean {
    return this.runner.catalog.has('volume.lvm.resize');
  }

  async list(): Promise<LvInfo[]> {
    return parseLvs((await this.run('volume.lvm.list', {})).stdout);
  }

  private async find(lv: string): Promise<LvInfo | undefined> {
    return (await this.list()).find((l) => l.name === lv);
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
    await this.ensureSized(`create ${lv}`, lv, bytes, () => this.run('volume.lvm.create', { lv, bytes }));
  }

  async snapshot(lv: string, origin: string, bytes: number): Promise<void> {
    await this.ensureSized(`snapshot ${lv}`, lv, bytes, () => this.run('volume.lvm.snapshot', { lv, origin, bytes }));
  }

  async rename(lv: string, newLv: string): Promise<void> {
    await runVerified(
      `rename ${lv}`,
      () => this.run('volume.lvm.rename', { lv, newLv }),
      async () => {
        const lvs = await this.list();
        return lvs.some((l) => l.name === newLv) && !lvs.some((l) => l.name === lv);
      },
      this.log,
    );
  }

  async remove(lv: string): Promise<void> {
    await runVerified(`remove ${lv}`, () => this.run('volume.lvm.remove', { lv }), async () => !(await this.find(lv)), this.log);
  }

  /** A chunk of a copy: rewriting it is harmless, so a failure is undone by the caller removing the target LV. */
  async copyChunk(source: string, path: string, offsetMiB: number, countMiB: number): Promise<void> {
    await this.run('volume.lvm.copy', { source, path, offsetMiB, countMiB });
  }

  async thinCreate(lv: string, pool: string, bytes: number): Promise<void> {
    await this.ensureSized(`create ${lv}`, lv, bytes, () => this.run('volume.lvm.thin.create', { lv, pool, bytes }));
  }

  async thinSnapshot(lv: string, origin: string): Promise<void> {
    await this.ensureSized(`snapshot ${lv}`, lv, 0, () => this.run('volume.lvm.thin.snapshot', { lv, origin }));
  }

  async thinResize(lv: string, bytes: number): Promise<void> {
    await runVerified(`resize ${lv}`, () => this.run('volume.lvm.thin.resize', { lv, bytes }), async () => ((await this.find(lv))?.sizeBytes ?? 0) >= bytes, this.log);
  }

  /** Grows an LV (lvextend keeps its data); done when `lvs` shows it at least that large, whatever the command said. */
  async extend(lv: string, bytes: number): Promise<void> {
    await runVerified(`extend ${lv}`, () => this.run('volume.lvm.resize', { lv, bytes }), async () => ((await this.find(lv))?.sizeBytes ?? 0) >= bytes, this.log);
  }

  /** Runs a command that makes `lv`; on failure, done if the LV is there whole, removed if it is there too small. */
  private async ensureSized(what: string, lv: string, bytes: number, make: () => Promise<unknown>): Promise<void> {
    let halfMade = false;
    try {
      await runVerified(
        what,
        make,
        async () => {
          const found = await this.find(lv);
          halfMade = found !== undefined && found.sizeBytes < bytes;
          return found !== undefined && !halfMade;
        },
        this.log,
      );
    } catch (err) {
      if (halfMade) await this.remove(lv).catch(() => undefined); // the caller's cleanup (and the next start) retry it
      throw err;
    }
  }
}
