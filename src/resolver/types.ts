import { VbsError } from '../core/errors.js';

/**
 * Attach by instance id (the VBS paper's VBS_Nimbus): a resolver turns a
 * cloud's instance id into the VMM host and VM that VBS attaches to.
 */

/** Where an instance runs, as VBS names it. */
export interface Placement {
  /** The VMM host, as the front's `vmmHosts` names it. */
  readonly vmmHost: string;
  /** The VM on that host, as its hypervisor tools name it (wrksp-7, instance-0000000a, vm1). */
  readonly vmId: string;
  /** The cloud's own word for the instance's state (Running, ACTIVE, ...), for messages. */
  readonly state: string;
  /** Whether a volume may be attached now. */
  readonly running: boolean;
  /** Which resolver answered. */
  readonly resolver: string;
}

/**
 * One way of finding instances. `resolve` answers undefined when it does not
 * know the instance *for this caller*: someone else's instance is unknown to
 * them, as someone else's volume is. An administrator (`admin`) may attach
 * into any instance: the owner check is skipped for them. It throws
 * ServiceUnavailable when it cannot tell (its tool or file failed): that is
 * never "not found".
 */
export interface InstanceResolver {
  readonly name: string;
  resolve(instanceId: string, owner: string, admin?: boolean): Promise<Placement | undefined>;
}

/** The resolver's source could not be asked: the attach starts nothing. */
export function unavailable(resolver: string, why: string, cause?: unknown): VbsError {
  return new VbsError('ServiceUnavailable', `The ${resolver} instance resolver cannot answer now: ${why}.`, { cause });
}
