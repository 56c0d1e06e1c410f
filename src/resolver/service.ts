import { VbsError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { requireString } from '../core/validate.js';
import type { Handlers } from '../soap/server.js';
import { instanceId } from './instance-id.js';
import type { InstanceResolver } from './types.js';

/**
 * The instance resolver service's operations. The front names the resolver
 * (it holds the order, because `scan` runs in the front) and the caller.
 */
export function instanceResolverHandlers(resolvers: readonly InstanceResolver[], log: Logger): Handlers {
  const byName = new Map(resolvers.map((r) => [r.name, r]));
  return {
    DescribeResolvers: () => ({ resolver: resolvers.map((r) => r.name) }),
    ResolveInstance: async (input) => {
      const id = instanceId(input.instanceId);
      const owner = requireString('owner', input.owner);
      const name = requireString('resolver', input.resolver);
      const resolver = byName.get(name);
      if (!resolver) throw new VbsError('ServiceUnavailable', `The instance resolver service has no ${name.slice(0, 32)} resolver configured.`);
      // Only the front calls this service: it says whether the caller is an administrator (any owner's instance).
      const admin = input.admin === true;
      const found = await resolver.resolve(id, owner, admin);
      log.info('resolved', { instanceId: id, owner, admin, resolver: name, found: Boolean(found), ...(found ? { vmmHost: found.vmmHost, vmId: found.vmId, state: found.state } : {}) });
      if (!found) return { found: false };
      return { found: true, vmmHost: found.vmmHost, vmId: found.vmId, state: found.state, running: found.running };
    },
  };
}
