import { errorMessage } from '../core/errors.js';
import { CommandFailed, type CommandRunner } from '../commands/runner.js';
import type { CloudParser } from './clouds/types.js';
import { unavailable, type InstanceResolver, type Placement } from './types.js';

export interface CommandResolverOptions {
  /** Cloud account (an OpenStack project id) → the VBS users (certificate names) it belongs to. */
  readonly accounts: Readonly<Record<string, readonly string[]>>;
  /** Cloud host name → VBS VMM host name, where they differ (default: the cloud's, lowercased). */
  readonly hostNames?: Readonly<Record<string, string>>;
  /** Pattern variant: `sim` runs `resolver.<name>.show.sim` (the host simulator). */
  readonly variant?: string;
}

/**
 * A resolver that runs one `resolver.<cloud>.show <instanceId>` pattern and
 * parses its output (src/resolver/clouds). The instance is the caller's only
 * when the configuration maps its cloud account to the caller (an
 * administrator may name anyone's).
 */
export class CommandResolver implements InstanceResolver {
  readonly name: string;

  constructor(
    private readonly cloud: CloudParser,
    private readonly runner: CommandRunner,
    private readonly opts: CommandResolverOptions,
  ) {
    this.name = cloud.name;
  }

  async resolve(instanceId: string, owner: string, admin = false): Promise<Placement | undefined> {
    let stdout: string;
    try {
      ({ stdout } = await this.runner.run(`resolver.${this.cloud.name}.show`, { instanceId }, this.opts.variant));
    } catch (err) {
      if (err instanceof CommandFailed && !err.result.timedOut && this.cloud.notFound(err.result.exitCode, err.result.stderr)) return undefined;
      throw unavailable(this.name, errorMessage(err), err);
    }
    let found;
    try {
      found = this.cloud.parse(stdout);
    } catch (err) {
      throw unavailable(this.name, `its show command printed something unexpected (${errorMessage(err)})`, err);
    }
    if (!admin && !(this.opts.accounts[found.account] ?? []).includes(owner)) return undefined;
    return {
      vmmHost: this.opts.hostNames?.[found.host] ?? found.host.toLowerCase(),
      vmId: found.vmId,
      state: found.state,
      running: found.running,
      resolver: this.name,
    };
  }
}
