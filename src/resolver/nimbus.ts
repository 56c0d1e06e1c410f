import Database from 'better-sqlite3';
import { errorMessage } from '../core/errors.js';
import type { CommandRunner } from '../commands/runner.js';
import { userOfDn } from './dn.js';
import { NIMBUS_INSTANCE_ID } from './instance-id.js';
import { unavailable, type InstanceResolver, type Placement } from './types.js';

export interface NimbusOptions {
  /** `$NIMBUS_HOME/services/var/nimbus/elastic.db`: the i-… → workspace id mapping. */
  readonly elasticDb: string;
  /** Nimbus node name → VBS VMM host name, where they differ (default: the node name, lowercased). */
  readonly nodeHosts?: Readonly<Record<string, string>>;
  /** Pattern variant: `sim` runs `resolver.nimbus.list.sim` (the host simulator). */
  readonly variant?: string;
}

/** One VM as `nimbus-admin --list --json` prints it (Gson: every value a string or null). */
interface AdminVm {
  id?: unknown;
  node?: unknown;
  creator?: unknown;
  state?: unknown;
}

/** workspace-control's Xen domain name prefix (XenUtil.XEN_NAME_PREFIX). */
const XEN_NAME_PREFIX = 'wrksp-';

/**
 * Nimbus, the paper's VBS_Nimbus without patching Nimbus:
 *   i-0a1b2c3d → elastic.db `instances.manager_id` (the workspace id, the one
 *   query Nimbus's ElasticPersistence makes) → `nimbus-admin --list --json`
 *   (the VMM node, creator DN and state) → the Xen domain `wrksp-<id>` on that
 *   node. The creator DN's CN must be the caller (or the caller an administrator).
 */
export class NimbusResolver implements InstanceResolver {
  readonly name = 'nimbus';

  constructor(
    private readonly runner: CommandRunner,
    private readonly opts: NimbusOptions,
  ) {}

  async resolve(instanceId: string, owner: string, admin = false): Promise<Placement | undefined> {
    if (!NIMBUS_INSTANCE_ID.test(instanceId)) return undefined;
    const workspaceId = this.managerId(instanceId);
    if (workspaceId === undefined) return undefined;
    const vm = (await this.listVms()).find((x) => String(x.id) === workspaceId);
    // Known to the EC2 frontend but no longer a VM: terminated, so gone.
    if (!vm || typeof vm.node !== 'string' || typeof vm.creator !== 'string') return undefined;
    if (!admin && userOfDn(vm.creator) !== owner) return undefined;
    const state = typeof vm.state === 'string' ? vm.state : 'unknown';
    return {
      vmmHost: this.opts.nodeHosts?.[vm.node] ?? vm.node.toLowerCase(),
      vmId: `${XEN_NAME_PREFIX}${workspaceId}`,
      state,
      running: state === 'Running',
      resolver: this.name,
    };
  }

  /** `select manager_id from instances where elastic_id = ?`, on a read-only connection. */
  private managerId(instanceId: string): string | undefined {
    let db: Database.Database | undefined;
    try {
      db = new Database(this.opts.elasticDb, { readonly: true, fileMustExist: true, timeout: 5_000 });
      const row = db.prepare('SELECT manager_id FROM instances WHERE elastic_id = ?').get(instanceId) as { manager_id: unknown } | undefined;
      if (!row || row.manager_id === null || row.manager_id === undefined) return undefined;
      const id = String(row.manager_id);
      if (!/^[0-9]{1,12}$/.test(id)) throw new Error(`manager_id '${id.slice(0, 20)}' is not a workspace id`);
      return id;
    } catch (err) {
      throw unavailable(this.name, `Nimbus's elastic.db could not be read (${errorMessage(err)})`, err);
    } finally {
      db?.close();
    }
  }

  private async listVms(): Promise<AdminVm[]> {
    const { stdout } = await this.runner.run('resolver.nimbus.list', {}, this.opts.variant).catch((err: unknown) => {
      throw unavailable(this.name, errorMessage(err), err);
    });
    let parsed: unknown;
    try {
      parsed = JSON.parse(stdout);
    } catch (err) {
      throw unavailable(this.name, 'nimbus-admin printed something other than JSON', err);
    }
    if (!Array.isArray(parsed)) throw unavailable(this.name, 'nimbus-admin --json did not print a list');
    return parsed.filter((x): x is AdminVm => typeof x === 'object' && x !== null);
  }
}
