/**
 * Nimbus knows its users by their certificate's distinguished name
 * (`/O=Grid/OU=Example/CN=alice`, or `CN=alice,OU=Example,O=Grid`); VBS knows
 * them by their certificate's common name. The mapping is the DN's CN: an
 * instance whose creator DN has the CN `alice` belongs to the VBS user
 * `alice`. A DN without exactly one CN belongs to nobody.
 */
export function userOfDn(dn: string): string | undefined {
  const parts = dn.startsWith('/') ? dn.slice(1).split('/') : dn.split(/\s*,\s*/);
  const cns = parts.filter((p) => /^CN=/i.test(p.trim())).map((p) => p.trim().slice(3).trim());
  return cns.length === 1 && cns[0] ? cns[0] : undefined;
}
