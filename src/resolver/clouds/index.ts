import { OPENSTACK } from './openstack.js';
import type { CloudParser } from './types.js';

/** The clouds resolved by one show command. A new cloud: its parser here, its pattern in commands.properties. */
export const CLOUDS: Readonly<Record<string, CloudParser>> = {
  [OPENSTACK.name]: OPENSTACK,
};
