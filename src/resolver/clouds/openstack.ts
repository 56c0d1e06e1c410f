import type { CloudInstance, CloudParser } from './types.js';

/**
 * OpenStack Nova: `openstack server show <id> -f json`, run with admin
 * credentials (the OS-EXT-SRV-ATTR fields are admin-only, policy
 * os_compute_api:os-extended-server-attributes). The owner is the server's
 * project; the libvirt domain is OS-EXT-SRV-ATTR:instance_name.
 */
export const OPENSTACK: CloudParser = {
  name: 'openstack',
  // openstackclient: "No server with a name or ID of '<id>' exists." and exit 1.
  notFound: (exitCode, stderr) => exitCode === 1 && /No server with a name or ID of/.test(stderr),
  parse(stdout: string): CloudInstance {
    const s = JSON.parse(stdout) as Record<string, unknown>;
    const field = (name: string): string => {
      const value = s[name];
      if (typeof value !== 'string' || value === '') throw new Error(`server show has no ${name} (are the resolver's credentials an admin's?)`);
      return value;
    };
    const status = field('status');
    return {
      host: field('OS-EXT-SRV-ATTR:host'),
      vmId: field('OS-EXT-SRV-ATTR:instance_name'),
      state: status,
      running: status === 'ACTIVE',
      account: field('project_id'),
    };
  },
};
