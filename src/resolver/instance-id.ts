import { VbsError } from '../core/errors.js';
import { requireString } from '../core/validate.js';

/**
 * An instance id as the clouds write them: Nimbus and EC2 `i-` + 8 hex digits,
 * OpenStack's UUIDs, or a hypervisor's VM name (the scan resolver). Same
 * alphabet as a VM id, so it can never be read as a command option.
 */
const INSTANCE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Nimbus's own form (DefaultIDMgmt): the only form the nimbus resolver looks up. */
export const NIMBUS_INSTANCE_ID = /^i-[0-9a-f]{8}$/;

export function instanceId(value: unknown, param = 'instanceId'): string {
  const v = requireString(param, value);
  if (!INSTANCE_ID.test(v)) {
    throw new VbsError('InvalidParameterValue', `Value for parameter ${param} is invalid: expected an instance id such as i-0a1b2c3d, a UUID or a VM name.`);
  }
  return v;
}
