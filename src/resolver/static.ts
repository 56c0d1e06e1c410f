import { readFileSync, statSync } from 'node:fs';
import { z } from 'zod';
import { errorMessage } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { unavailable, type InstanceResolver, type Placement } from './types.js';

/**
 * The operator's own map, a JSON file:
 *   { "i-0a1b2c3d": { "vmmHost": "node1", "vmId": "wrksp-7", "owner": "alice" }, ... }
 * with an optional `"state": "stopped"` (anything but `running`, the default,
 * refuses attaches). Read again whenever its modification time or size
 * changes; a file that stops being valid keeps the last good map (and says
 * so in the log) rather than forgetting every instance.
 */
const Entry = z
  .object({
    vmmHost: z.string().min(1).max(253),
    vmId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/),
    owner: z.string().min(1),
    state: z.string().min(1).default('running'),
  })
  .strict();
const MapFile = z.record(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/), Entry);
type Map = z.infer<typeof MapFile>;

export class StaticResolver implements InstanceResolver {
  readonly name = 'static';
  private loaded: { stamp: string; map: Map } | undefined;

  constructor(
    private readonly file: string,
    private readonly log?: Logger,
  ) {}

  async resolve(instanceId: string, owner: string, admin = false): Promise<Placement | undefined> {
    const e = this.current()[instanceId];
    if (!e || (!admin && e.owner !== owner)) return undefined;
    return { vmmHost: e.vmmHost.toLowerCase(), vmId: e.vmId, state: e.state, running: e.state === 'running', resolver: this.name };
  }

  private current(): Map {
    let stamp: string;
    try {
      const st = statSync(this.file);
      stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
    } catch (err) {
      throw unavailable(this.name, `its map file cannot be read (${errorMessage(err)})`, err);
    }
    if (this.loaded?.stamp === stamp) return this.loaded.map;
    try {
      const map = MapFile.parse(JSON.parse(readFileSync(this.file, 'utf8')));
      this.loaded = { stamp, map };
      this.log?.info('instance map loaded', { file: this.file, instances: Object.keys(map).length });
      return map;
    } catch (err) {
      if (!this.loaded) throw unavailable(this.name, `its map file is not valid (${errorMessage(err)})`, err);
      this.log?.warn('instance map is not valid; keeping the last good one', { file: this.file, err: errorMessage(err) });
      return this.loaded.map;
    }
  }
}
