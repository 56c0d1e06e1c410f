import { VbsError } from '../../core/errors.js';
import { VBS_HOME } from '../../core/paths.js';
import * as v from '../../core/validate.js';
import type { AttachMode } from '../../core/states.js';
import type { CommandCatalog } from '../../commands/catalog.js';
import type { CommandRunner } from '../../commands/runner.js';

export interface DiskSource {
  kind: string;
  path?: string;
}

/**
 * A hypervisor adapter is nothing but a group of patterns, vmm.<name>.*:
 * moving from Xen to Proxmox is an edit of commands.properties.
 */
export class VmmAdapter {
  constructor(
    readonly name: string,
    private readonly runner: CommandRunner,
    private readonly volumeRoots: readonly string[],
  ) {}

  static patternsFor(name: string): string[] {
    return [`vmm.${name}.attach`, `vmm.${name}.detach`];
  }

  static choose(catalog: CommandCatalog, override?: string): string {
    const name = override ?? catalog.setting('vmm.adapter') ?? 'sim';
    if (!/^[a-z][a-z0-9-]*$/.test(name)) throw new Error(`commands: vmm.adapter '${name}' is not an adapter name`);
    catalog.requireAll(VmmAdapter.patternsFor(name));
    return name;
  }

  /** The local path of a file source, which must lie under a configured volume root. */
  private localPath(source: DiskSource): string {
    if (source.kind !== 'file') throw new VbsError('InvalidParameterValue', `Value for parameter source.kind is invalid: this host attaches file sources.`);
    const path = v.requireString('source.path', source.path);
    for (const root of this.volumeRoots) {
      try {
        return v.pathUnder(root, path, 'source.path');
      } catch {
        // try the next root
      }
    }
    throw new VbsError('InvalidParameterValue', 'Value for parameter source.path is invalid: it is not under a volume folder of this host.');
  }

  async attach(vmId: string, device: string, mode: AttachMode, source: DiskSource): Promise<void> {
    const path = this.localPath(source);
    await this.runner.run(`vmm.${this.name}.attach`, { vmId, vmDev: v.bareDevice(device), mode, access: mode === 'r' ? 'ro' : 'rw', path }, mode);
  }

  async detach(vmId: string, device: string): Promise<void> {
    await this.runner.run(`vmm.${this.name}.detach`, { vmId, vmDev: v.bareDevice(device) });
  }
}

export const FIXED_PARAMS = { node: process.execPath, vbsHome: VBS_HOME };
