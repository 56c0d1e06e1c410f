/**
 * Service identities. A delegate must know that its caller is the front, and
 * a certificate's common name alone cannot tell it: anyone who can have a
 * user certificate issued by the deployment's CA could ask for CN=vbs-front.
 * So the CA marks the certificates it issues to services with an extended
 * key usage of VBS's own (a private OID that user issuance never sets: an
 * `openssl req -subj /CN=vbs-front` has no such purpose), delegates require
 * it together with an allowed name, and the front refuses it, and every name
 * reserved for services, as a tenant.
 */

/**
 * The "VBS service" key purpose: a UUID-derived OID (ITU-T X.667, arc 2.25),
 * unique without registration. Non-critical, beside serverAuth/clientAuth, so
 * other TLS software (zeep, curl, openssl) accepts these certificates as usual.
 */
export const VBS_SERVICE_PURPOSE = '2.25.201963170160277001965667327993815506949';

/** Names of the form vbs-* are kept for services (vbs-front, vbs-volume-delegate, ...). */
export const SERVICE_NAME_PREFIX = 'vbs-';

export function isReservedServiceName(commonName: string): boolean {
  return commonName.trim().toLowerCase().startsWith(SERVICE_NAME_PREFIX);
}

/** Whether a certificate's extended key usages (OIDs) include the VBS service purpose. */
export function hasServicePurpose(extKeyUsage: readonly string[] | undefined): boolean {
  return (extKeyUsage ?? []).includes(VBS_SERVICE_PURPOSE);
}

/**
 * The "VBS administrator" key purpose, set on user certificates issued with
 * `vbs admin user add --admin`: such a user sees and acts on every owner's
 * resources. Like the service purpose, only the VBS CA can set it.
 */
export const VBS_ADMIN_PURPOSE = '2.25.33570205906380719716764491859024694840';

/** Whether a certificate's extended key usages (OIDs) include the VBS administrator purpose. */
export function hasAdminPurpose(extKeyUsage: readonly string[] | undefined): boolean {
  return (extKeyUsage ?? []).includes(VBS_ADMIN_PURPOSE);
}
