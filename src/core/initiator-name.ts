/**
 * The iSCSI initiator name a VMM host logs in with, and the name a target's
 * ACL admits for it: one per host, made from the name the front knows the
 * host by (its `vmmHosts` entry). The volume delegate binds it on export,
 * and sends it with the export, so the VMM host logs in as exactly that name.
 */
export const HOST_INITIATOR_PREFIX = 'iqn.2026-11.org.vbs.host';

export function hostInitiatorName(vmmHost: string): string {
  return `${HOST_INITIATOR_PREFIX}:${vmmHost.toLowerCase()}`;
}
