import { isPostgresUrl } from '../db/postgres.js';
import { readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import type { TlsMaterial } from '../core/service.js';

/**
 * Configuration files of the three services (JSON). Relative paths are taken
 * from the folder of the file, so a deployment folder can move as a whole.
 */
const Listen = z.object({ host: z.string().default('127.0.0.1'), port: z.number().int().min(0).max(65535) }).strict();
/**
 * `crl`: the CA's revocation list, reloaded when it changes (`vbs admin user revoke`); without it no certificate is checked for revocation.
 * `maxAnonymousConnections`: connections without a certificate the CA vouches for, held open at once (64 by default); more are closed at once.
 */
const Tls = z.object({ key: z.string(), cert: z.string(), ca: z.string(), crl: z.string().optional(), maxAnonymousConnections: z.number().int().min(0).optional() }).strict();
const Endpoint = z.object({ name: z.string().min(1), url: z.string().url() }).strict();

const Common = {
  listen: Listen,
  /** The URL written into the served WSDL; defaults to https://host:port/path. */
  publicUrl: z.string().url().optional(),
  tls: Tls,
  commands: z.string().optional(),
  /** The Prometheus listener (plain HTTP, GET /metrics; docs/metrics.md). None: no metrics are served. */
  metrics: Listen.optional(),
};

export const FrontConfigSchema = z
  .object({
    role: z.literal('front'),
    ...Common,
    database: z.string(),
    volumeDelegates: z.array(Endpoint).min(1),
    vmmHosts: z.array(Endpoint).default([]),
    delegateTimeoutMs: z.number().int().positive().default(30_000),
    pollIntervalMs: z.number().int().positive().default(500),
    /**
     * Certificate names that are administrators (beside certificates issued
     * with the VBS administrator purpose): they see and act on every user's
     * resources and call the administrators' operations.
     */
    admins: z.array(z.string().min(1)).default(['admin']),
    /** Each user's limits unless `vbs admin quota set` gave them others. */
    quotas: z
      .object({
        volumes: z.number().int().min(0).default(1000),
        gib: z.number().int().min(0).default(102_400),
        snapshots: z.number().int().min(0).default(1000),
        snapshotGib: z.number().int().min(0).default(102_400),
      })
      .strict()
      .default({}),
    /** The audit log: one JSON line per state-changing or refused request, written before its answer. None: no audit log. */
    auditLog: z.string().optional(),
    /** Image import and export (docs/images.md): the largest image taken, and how long a transfer may stall. */
    images: z
      .object({
        maxMiB: z.number().int().positive().default(1_048_576),
        idleSeconds: z.number().int().positive().max(3600).default(60),
      })
      .strict()
      .default({}),
    /** How often the front probes its delegates, to notice one coming back. */
    healthIntervalMs: z.number().int().positive().default(5_000),
    /**
     * Unfinished work (a detach or delete that could not finish, an undo that
     * failed) is retried with a back-off from retryFirstDelayMs doubling up to
     * retryMaxDelayMs; after retryGiveUpMs its resource goes to error.
     */
    retryFirstDelayMs: z.number().int().positive().default(2_000),
    retryMaxDelayMs: z.number().int().positive().default(300_000),
    retryGiveUpMs: z.number().int().positive().default(3_600_000),
    /**
     * How long a runner's claim on a workflow or undo holds unless renewed (it
     * is renewed while a step runs): how soon another front takes over work
     * whose runner stopped without a trace. Longer than delegateTimeoutMs.
     */
    claimLeaseMs: z.number().int().positive().default(120_000),
    /** Attach by instance id: see InstanceResolutionSchema. */
    instances: z.lazy(() => InstanceResolutionSchema).default({}),
    /** The region this VBS calls itself (EC2 API: DescribeAvailabilityZones, and the region requests are signed for). */
    region: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/).default('vbs-1'),
    /** Availability zones, each a group of volume delegates (by name); default: one zone `<region>a` of them all. */
    zones: z
      .array(z.object({ name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/), volumeDelegates: z.array(z.string().min(1)).min(1) }).strict())
      .optional(),
    /** The EC2 Query API's listener (issue 18, src/ec2); none: no EC2 API. */
    ec2: z.lazy(() => Ec2ConfigSchema).optional(),
  })
  .strict();

/**
 * The EC2 Query API: its own HTTPS listener (server certificate from `tls`,
 * no client certificate), requests signed with access keys (SigV4).
 * `secretsKey`: the 0600 file holding the key that seals access keys' secrets
 * in the database (src/ec2/secrets.ts). `devicePrefix`: how EC2 device names
 * (/dev/sdf, /dev/xvdf) are given to the hypervisors: xvdf (Xen), vdf (virtio:
 * libvirt, QEMU) or sdf.
 */
export const Ec2ConfigSchema = z
  .object({
    listen: Listen,
    publicUrl: z.string().url().optional(),
    secretsKey: z.string(),
    devicePrefix: z.enum(['xvd', 'vd', 'sd']).default('xvd'),
    /** How far a request's X-Amz-Date may be from the server's clock (EC2: 5 minutes). */
    maxClockSkewSeconds: z.number().int().positive().max(900).default(300),
  })
  .strict();
export type Ec2Config = z.infer<typeof Ec2ConfigSchema>;

/**
 * The front's side of attach by instance id: the resolvers to try, in order.
 * `scan` runs in the front (it asks the VMM delegates, which serve only the
 * front); every other name is asked of the instance resolver service at
 * `resolverUrl`.
 */
export const InstanceResolutionSchema = z
  .object({
    resolvers: z.array(z.string().regex(/^[a-z][a-z0-9-]{0,31}$/)).default(['scan']),
    resolverUrl: z.string().url().optional(),
    /** How long a resolved placement is reused (never after an attach to it failed). */
    cacheMs: z.number().int().min(0).max(600_000).default(5_000),
    /** Each call to the resolver service and each scan of a VMM delegate. */
    timeoutMs: z.number().int().positive().default(10_000),
  })
  .strict()
  .refine((c) => c.resolvers.every((r) => r === 'scan') || c.resolverUrl !== undefined, {
    message: 'resolvers other than scan need resolverUrl (the instance resolver service)',
  });

const HostNames = z.record(z.string().min(1), z.string().min(1));

/** The instance resolver service (src/resolver): each resolver it runs, with its settings. */
export const InstanceResolverConfigSchema = z
  .object({
    role: z.literal('instance-resolver'),
    ...Common,
    allowedCallers: z.array(z.string()).default(['vbs-front']),
    /** Run the resolver.* patterns' `.sim` variants on this host simulator state folder. */
    simState: z.string().optional(),
    /** Environment for the resolvers' commands (OS_CLOUD, OS_CLIENT_CONFIG_FILE, NIMBUS_HOME...). */
    env: z.record(z.string()).default({}),
    nimbus: z
      .object({
        /** $NIMBUS_HOME/services/var/nimbus/elastic.db */
        elasticDb: z.string(),
        /** Nimbus node name → VBS VMM host name, where they differ. */
        nodeHosts: HostNames.optional(),
      })
      .strict()
      .optional(),
    /** Resolvers run by one show command (src/resolver/clouds), by name: openstack. */
    clouds: z
      .record(
        z.string(),
        z
          .object({
            /** Cloud account (an OpenStack project id) → the VBS users whose instances it holds. */
            accounts: z.record(z.string().min(1), z.array(z.string().min(1))),
            hostNames: HostNames.optional(),
          })
          .strict(),
      )
      .default({}),
    static: z.object({ file: z.string() }).strict().optional(),
  })
  .strict();

export const VolumeDelegateConfigSchema = z
  .object({
    role: z.literal('volume-delegate'),
    ...Common,
    name: z.string().min(1).default('volume-delegate'),
    allowedCallers: z.array(z.string()).default(['vbs-front']),
    /**
     * The SQLite file where the delegate remembers the generations it acted on
     * (src/delegates/generations.ts). Default: beside the configuration file,
     * named after it (volume-delegate.json -> volume-delegate.generations.db).
     */
    generationsFile: z.string().optional(),
    /**
     * The folder of the records kept beside each volume's and snapshot's data
     * (owner, size, lineage: src/delegates/volume/object-records.ts), from which
     * `vbs admin rebuild` rebuilds lost metadata. Default: the file back end's
     * root (beside the data); lvm-iscsi: `<stateDir>/records`; rbd: beside the
     * configuration file (volume-delegate.json -> volume-delegate.records/).
     */
    recordsDir: z.string().optional(),
    /** Host commands that may run at once; more wait their turn (one slow command holds up only its own slot). */
    commandConcurrency: z.number().int().min(1).max(64).default(8),
    backend: z.discriminatedUnion('type', [
      z
        .object({
          type: z.literal('file'),
          root: z.string(),
          /** Caps what this delegate provisions, below what the file system has free. */
          capacityGiB: z.number().int().positive().optional(),
          /**
           * Free space never provisioned, so thick volumes cannot fill the file
           * system to its last byte: the smaller of reservePercent of its size
           * and reserveGiB (0 in either turns the reserve off).
           */
          reservePercent: z.number().min(0).max(50).default(5),
          reserveGiB: z.number().min(0).max(1_048_576).default(10),
          /** Image imports taken at once, each streamed to its own file (docs/images.md); one more is refused. */
          maxImports: z.number().int().min(1).max(64).optional(),
        })
        .strict(),
      z
        .object({
          type: z.literal('lvm-iscsi'),
          /** The volume group volumes and snapshots are logical volumes of. */
          vg: z.string().regex(/^[A-Za-z0-9+_][A-Za-z0-9+_.-]{0,126}$/),
          /** Targets are named `<iqnPrefix>:<volumeId>`. */
          iqnPrefix: z.string().regex(/^iqn\.[0-9]{4}-[0-9]{2}\.[a-z0-9.-]+$/),
          /** ip:port the VMM hosts log in to (the target daemon's portal). */
          portal: z.string().regex(/^[A-Za-z0-9.-]{1,253}:[0-9]{1,5}$/),
          /** Which pattern set exports: iscsi.iet.* (ietadm) or iscsi.tgt.* (tgtadm). */
          target: z.enum(['iet', 'tgt']),
          /** tgtd's control port (`tgtadm -C`), for several tgtd on one host. */
          tgtControlPort: z.number().int().min(0).max(65535).default(0),
          /**
           * tgt: each export's host must also prove a per-export CHAP secret
           * (docs/chap.md). false: the initiator-name ACL alone, for VMM hosts that
           * cannot yet be given a secret off their command line (libvirt network
           * disks, open-iscsi hosts). Change it only while nothing is exported.
           */
          chap: z.boolean().default(true),
          /** Thin snapshots in this thin pool of the VG instead of copies of lvcreate -s snapshots. */
          thinPool: z.string().regex(/^[A-Za-z0-9+_][A-Za-z0-9+_.-]{0,126}$/).optional(),
          /** Caps what this delegate provisions, below what the VG has free. */
          capacityGiB: z.number().int().positive().optional(),
          /** Where the delegate keeps which VMM hosts use each export. */
          stateDir: z.string(),
          /** MiB copied per dd run: the grain of progress and of cancelling. */
          copyChunkMiB: z.number().int().positive().max(65536).default(256),
          /** Run the LVM and IET patterns' `.sim` variants on this host simulator state folder. */
          simState: z.string().optional(),
        })
        .strict(),
      z
        .object({
          type: z.literal('rbd'),
          /** The cluster's ceph.conf: the monitors' addresses come from it. */
          cephConf: z.string(),
          /** The cephx client VBS acts as (client.<clientId>), and the file holding its key. */
          clientId: z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$/).default('vbs'),
          keyring: z.string(),
          /** The RBD pool volumes and snapshots are images of (`rbd pool init` done). */
          pool: z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,126}$/),
          /**
           * Seconds an rbd or ceph call waits for the monitors (client_mount_timeout)
           * and for each monitor and OSD operation: a cluster that is down fails
           * a call after this, not after librados' 300 s.
           */
          timeoutSec: z.number().int().min(1).max(300).default(10),
          /** Caps what this delegate provisions; without it, the pool's size as `ceph df` reports it. */
          capacityGiB: z.number().int().positive().optional(),
          /** A volume from a snapshot is flattened when it would have more parents than this (0: always, a full copy). */
          maxCloneDepth: z.number().int().min(0).max(64).default(8),
          /**
           * A local folder where image uploads are staged and made raw before
           * `rbd import`, and exports written before they are sent (docs/images.md).
           * Default: beside the configuration file (volume-delegate.json -> volume-delegate.staging/).
           */
          stagingDir: z.string().optional(),
          /** Image imports taken at once, each staged in its own file; one more is refused. */
          maxImports: z.number().int().min(1).max(64).optional(),
        })
        .strict(),
    ]),
  })
  .strict();

export const VmmDelegateConfigSchema = z
  .object({
    role: z.literal('vmm-delegate'),
    ...Common,
    hostName: z.string().min(1),
    allowedCallers: z.array(z.string()).default(['vbs-front']),
    /**
     * The SQLite file where the delegate remembers the generations it acted on
     * (src/delegates/generations.ts). Default: beside the configuration file,
     * named after it (vmm-delegate.json -> vmm-delegate.generations.db).
     */
    generationsFile: z.string().optional(),
    /** Overrides `vmm.adapter` in commands.properties. */
    adapter: z.string().optional(),
    /** Folders where volume files may be found (the shared file system's mount). */
    volumeRoots: z.array(z.string()).default([]),
    /** State folder of the simulated hypervisor (adapter sim). */
    simState: z.string().optional(),
    /** Folder of the VMs' QMP sockets, `<qmpDir>/<vmId>.qmp` (adapter qemu). */
    qmpDir: z.string().optional(),
    env: z.record(z.string()).default({}),
  })
  .strict();

export const ServiceConfigSchema = z.discriminatedUnion('role', [
  FrontConfigSchema,
  VolumeDelegateConfigSchema,
  VmmDelegateConfigSchema,
  InstanceResolverConfigSchema,
]);

export type FrontConfig = z.infer<typeof FrontConfigSchema>;
export type VolumeDelegateConfig = z.infer<typeof VolumeDelegateConfigSchema>;
export type VmmDelegateConfig = z.infer<typeof VmmDelegateConfigSchema>;
export type InstanceResolverConfig = z.infer<typeof InstanceResolverConfigSchema>;
export type InstanceResolution = z.infer<typeof InstanceResolutionSchema>;
export type ServiceConfig = z.infer<typeof ServiceConfigSchema>;

/** Reads and checks a service configuration, resolving its paths. */
export function loadServiceConfig(file: string): ServiceConfig {
  const base = dirname(resolve(file));
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
  const parsed = ServiceConfigSchema.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`${file} is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ')}`);
  }
  const c = parsed.data;
  const abs = (p: string): string => resolve(base, p);
  const tls = { key: abs(c.tls.key), cert: abs(c.tls.cert), ca: abs(c.tls.ca), crl: c.tls.crl ? abs(c.tls.crl) : undefined, maxAnonymousConnections: c.tls.maxAnonymousConnections };
  const commands = c.commands ? abs(c.commands) : undefined;
  const generationsFile = (configured: string | undefined): string =>
    configured ? abs(configured) : resolve(base, `${basename(file).replace(/\.json$/, '')}.generations.db`);
  switch (c.role) {
    case 'front':
      return {
        ...c,
        tls,
        commands,
        database: c.database === ':memory:' || isPostgresUrl(c.database) ? c.database : abs(c.database),
        auditLog: c.auditLog ? abs(c.auditLog) : undefined,
        ec2: c.ec2 ? { ...c.ec2, secretsKey: abs(c.ec2.secretsKey) } : undefined,
      };
    case 'volume-delegate':
      return {
        ...c,
        tls,
        commands,
        generationsFile: generationsFile(c.generationsFile),
        recordsDir: c.recordsDir
          ? abs(c.recordsDir)
          : c.backend.type === 'file'
            ? abs(c.backend.root)
            : c.backend.type === 'lvm-iscsi'
              ? join(abs(c.backend.stateDir), 'records')
              : resolve(base, `${basename(file).replace(/\.json$/, '')}.records`),
        backend:
          c.backend.type === 'file'
            ? { ...c.backend, root: abs(c.backend.root) }
            : c.backend.type === 'rbd'
              ? {
                  ...c.backend,
                  cephConf: abs(c.backend.cephConf),
                  keyring: abs(c.backend.keyring),
                  stagingDir: c.backend.stagingDir ? abs(c.backend.stagingDir) : resolve(base, `${basename(file).replace(/\.json$/, '')}.staging`),
                }
              : { ...c.backend, stateDir: abs(c.backend.stateDir), simState: c.backend.simState ? abs(c.backend.simState) : undefined },
      };
    case 'vmm-delegate':
      return { ...c, tls, commands, generationsFile: generationsFile(c.generationsFile), volumeRoots: c.volumeRoots.map(abs), simState: c.simState ? abs(c.simState) : undefined, qmpDir: c.qmpDir ? abs(c.qmpDir) : undefined };
    case 'instance-resolver':
      return {
        ...c,
        tls,
        commands,
        simState: c.simState ? abs(c.simState) : undefined,
        nimbus: c.nimbus ? { ...c.nimbus, elasticDb: abs(c.nimbus.elasticDb) } : undefined,
        static: c.static ? { file: abs(c.static.file) } : undefined,
      };
  }
}

export function readTls(tls: { key: string; cert: string; ca: string }): TlsMaterial {
  return { key: readFileSync(tls.key), cert: readFileSync(tls.cert), ca: readFileSync(tls.ca) };
}

export function defaultPublicUrl(listen: { host: string; port: number }, path: string): string {
  const host = listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  return `https://${host}:${listen.port}${path}`;
}
