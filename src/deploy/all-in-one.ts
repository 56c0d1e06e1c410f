import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { VBS_HOME } from '../core/paths.js';
import { CommandCatalog } from '../commands/catalog.js';
import { PkiStore, writeAtomic } from '../pki/store.js';
import { UserRegistry } from '../pki/users.js';
import { DEPLOYMENT_ADMIN } from '../core/validate.js';
import { LogFiles } from './log-files.js';
import { startServe } from './service-process.js';
import { Supervisor, type SupervisedService } from './supervisor.js';
import { hostInitiatorName } from '../core/initiator-name.js';
import { writeSimInitiatorName } from '../sim/libiscsi.js';
import { freePort } from '../core/free-port.js';
import { canRunTgtd, freeTgtdPorts, startTgtd, type TgtdPorts } from './tgtd.js';
import { metricsPorts, writeScrapeTargets, type MetricsEndpoints } from './metrics-targets.js';

export interface UpOptions {
  readonly dataDir: string;
  readonly port: number;
  readonly commands?: string;
  /** Simulated VMs created on first start. */
  readonly simVms?: readonly string[];
  /** `file` (default): volumes as files; `lvm-iscsi`: LVs of a simulated VG, exported over iSCSI; `rbd`: images of an existing Ceph cluster (`ceph`). */
  readonly backend?: 'file' | 'lvm-iscsi' | 'rbd';
  /** rbd only: the cluster (its ceph.conf), the pool, and the cephx client with its key file. */
  readonly ceph?: CephOptions;
  /** lvm-iscsi only: the target daemon. `auto` (default): a real tgtd when one can run here, else the simulated IET. */
  readonly target?: 'auto' | 'iet' | 'tgt';
  /**
   * The VMM adapter of the host `localhost`, written into vmm-delegate.json:
   * `sim` (the simulator, with VMs vm1-vm3), `libvirt` (virsh on
   * qemu:///system) or `qemu` (QMP sockets in qmpDir). Default: the
   * operator's --commands file's vmm.adapter when it names one, else sim.
   */
  readonly vmm?: VmmChoice;
  /** qemu only: the folder of the VMs' QMP sockets (default DIR/qmp). */
  readonly qmpDir?: string;
  /** Where restarts and give-ups are reported, a line each (stderr by default). */
  readonly report?: (line: string) => void;
  /** The EC2 Query API's port (default 8773, or a free one when `port` is 0; 0: a free one). */
  readonly ec2Port?: number;
  /**
   * How many fronts serve at once, all on one metadata database (default 1;
   * docs/operators/multi-front.md). The first listens on `port` and
   * `ec2Port`, the others on free ports.
   */
  readonly fronts?: number;
  /**
   * The metadata database every front uses: a SQLite file (relative to the
   * data folder; default vbs.db), or a PostgreSQL URL (`postgres://...`,
   * docs/operators/postgresql.md).
   */
  readonly database?: string;
  /**
   * Profiling (the bench's --profile): each service runs with `node --cpu-prof`
   * and writes its profile into `<cpuProfileDir>/<role>/` when it stops.
   */
  readonly cpuProfileDir?: string;
  /** The largest image an import takes, in MiB (the front's `images.maxMiB`). */
  readonly maxImageMiB?: number;
}

/** The most fronts `vbs up --fronts` starts on one machine. */
export const MAX_FRONTS = 8;

export interface CephOptions {
  readonly conf: string;
  /** Default `vbs`. */
  readonly pool?: string;
  /** The cephx client id (client.<id>); default `vbs`. */
  readonly clientId?: string;
  /** Default: Ceph's own place for it, ceph.client.<id>.keyring beside the conf. */
  readonly keyring?: string;
}

export interface Deployment {
  /** The first front's URL. */
  readonly frontUrl: string;
  /** Every front's URL, the first one first (`--fronts N`). */
  readonly frontUrls: readonly string[];
  /** Every front's EC2 Query API endpoint, in the same order. */
  readonly ec2Urls: readonly string[];
  readonly clientConfig: string;
  /** Stops every service, in reverse order of start; idempotent. */
  stop(): Promise<void>;
  /** Resolves with a message when a service keeps dying and the supervisor gave up on it. */
  readonly gaveUp: Promise<string>;
  /** What serves the volumes, for the start-up banner. */
  readonly storage: string;
  /** The VMM host and what it drives, for the start-up banner. */
  readonly vmmHost: string;
  /** Each service's Prometheus endpoint, and the scrape targets file naming them (docs/metrics.md). */
  readonly metrics: MetricsEndpoints;
  /** The EC2 Query API's endpoint (`aws --endpoint-url`). */
  readonly ec2Url: string;
}

/** Eucalyptus's and Nimbus's port for the EC2 API. */
export const DEFAULT_EC2_PORT = 8773;
/** The key that seals access keys' secrets in the metadata (src/ec2/secrets.ts), beside the CA key. */
export const EC2_SECRETS_KEY = 'pki/ec2-secrets.key';

export const VMM_CHOICES = ['sim', 'libvirt', 'qemu'] as const;
export type VmmChoice = (typeof VMM_CHOICES)[number];

const CLI = join(VBS_HOME, 'dist', 'cli', 'main.js');
const HOSTSIM = join(VBS_HOME, 'dist', 'sim', 'hostsim.js');
export const DEFAULT_SIM_VMS = ['vm1', 'vm2', 'vm3'];
/** The simulated volume group of `--backend lvm-iscsi` (sparse files: only written data takes space). */
export const SIM_VG = 'vbs';
const SIM_VG_BYTES = 256 * 1024 ** 3;
export const IQN_PREFIX = 'iqn.2026-11.org.vbs';
/** How long a service may take to accept requests (the front recovers its journal first). */
const READY_TIMEOUT_MS = 120_000;
const SERVICE_ROLES = ['volume-delegate', 'vmm-delegate', 'instance-resolver'] as const;
/** The instance resolver's static map (instance id → host, VM, owner), for the operator to fill. */
export const INSTANCE_MAP = 'instances.json';
/** A service's name in the deployment: the three services, then `front`, `front-2`, … (each a `vbs serve front`). */
type Role = (typeof SERVICE_ROLES)[number] | `front${string}`;

/** The supervised names of `n` fronts: `front` (as with one front: its files and log keep their names), `front-2`, … */
export function frontNames(n: number): `front${string}`[] {
  return Array.from({ length: n }, (_, i) => (i === 0 ? 'front' : (`front-${i + 1}` as const)));
}

/**
 * The all-in-one deployment: a CA and certificates on first start, then one
 * process per service on 127.0.0.1 (tgtd when it runs a real one, the
 * delegates, then the front), and DIR/client.json for the admin once the front
 * accepts requests. A service that stops unexpectedly is restarted on the same
 * port (see Supervisor): the first port each one got is written into its
 * configuration, so the front's and the client's URLs stay true.
 */
export async function up(opts: UpOptions): Promise<Deployment> {
  const dir = resolve(opts.dataDir);
  for (const sub of ['', 'volumes', 'logs', 'vmm-sim']) mkdirSync(join(dir, sub), { recursive: true, mode: 0o700 });
  ensureDeploymentPki(dir);
  await new UserRegistry(dir).ensureCrl();
  const commands = opts.commands ? resolve(opts.commands) : undefined;
  const vmm: string = opts.vmm ?? operatorsAdapter(commands) ?? 'sim';
  const qmpDir = resolve(opts.qmpDir ?? join(dir, 'qmp'));
  if (vmm === 'sim') seedSimVms(join(dir, 'vmm-sim'), opts.simVms ?? DEFAULT_SIM_VMS);
  // The simulated VMM host logs in to targets as the name their ACL admits for it (the front calls it localhost).
  if (vmm === 'sim') writeSimInitiatorName(join(dir, 'vmm-sim'), hostInitiatorName('localhost'));
  if (vmm === 'qemu') mkdirSync(qmpDir, { recursive: true, mode: 0o700 });
  // libvirt runs QEMU as its own user (libvirt-qemu), which must be able to
  // reach volume files: search (x) permission on the folders on their path,
  // no listing. libvirt then gives it the file itself (dynamic_ownership).
  if (vmm === 'libvirt') for (const sub of ['', 'volumes']) chmodSync(join(dir, sub), 0o711);
  const backendType = opts.backend ?? 'file';
  // One simulated site: the VG, the IET and the VMM host share a state folder,
  // so the simulated initiator finds what the simulated target exports.
  if (backendType === 'lvm-iscsi') seedSimVg(join(dir, 'vmm-sim'));
  const rbd = backendType === 'rbd' ? rbdBackend(opts.ceph) : undefined;
  const target = opts.target ?? 'auto';
  if (target === 'tgt' && !canRunTgtd()) throw new Error('--target tgt needs tgtd and tgtadm on PATH and root (install the Debian package tgt)');
  const realTgtd = backendType === 'lvm-iscsi' && (target === 'tgt' || (target === 'auto' && canRunTgtd()));
  const tgtdPorts = realTgtd ? await freeTgtdPorts() : undefined;
  // A deployment on a free port (tests, several at once) gets a free EC2 port too, unless one is asked for.
  const askedEc2Port = opts.ec2Port ?? (opts.port === 0 ? 0 : DEFAULT_EC2_PORT);
  const ec2Port = askedEc2Port === 0 ? await freePort() : askedEc2Port;
  const frontCount = opts.fronts ?? 1;
  if (!Number.isInteger(frontCount) || frontCount < 1 || frontCount > MAX_FRONTS) throw new Error(`--fronts must be a whole number from 1 to ${MAX_FRONTS}`);
  const database = metadataDatabase(opts.database);
  const fronts = frontNames(frontCount);
  const ROLES: readonly Role[] = [...SERVICE_ROLES, ...fronts];
  // The first front keeps the asked EC2 port; the others get free ones.
  const ec2Ports = new Map<Role, number>([[fronts[0]!, ec2Port]]);
  for (const f of fronts.slice(1)) ec2Ports.set(f, await freePort());

  const logs = new LogFiles(join(dir, 'logs'));
  // Every service checks callers against the CA's revocation list (reloaded on change).
  const tls = (name: string) => ({ key: `pki/${name}.key`, cert: `pki/${name}.crt`, ca: 'pki/ca.crt', crl: 'pki/ca.crl' });
  const listen = (port: number) => ({ host: '127.0.0.1', port });
  // Each service's Prometheus listener, on a port of its own chosen now (kept across its restarts).
  const metricsPort = await metricsPorts<Role>(ROLES);
  const metrics = (role: Role) => ({ metrics: listen(metricsPort[role]!) });
  const urls = new Map<Role, string>();
  // Each front on one database: its own port, metrics, EC2 listener and audit log.
  const frontConfig = (f: Role) => () => ({
    role: 'front',
    listen: listen(f === fronts[0] ? opts.port : 0),
    ...metrics(f),
    tls: tls('front'),
    database,
    auditLog: f === fronts[0] ? 'audit.log' : `audit-${f}.log`,
    ...(opts.maxImageMiB ? { images: { maxMiB: opts.maxImageMiB } } : {}),
    volumeDelegates: [{ name: 'local', url: urls.get('volume-delegate') }],
    vmmHosts: [{ name: 'localhost', url: urls.get('vmm-delegate') }],
    instances: { resolvers: ['scan', 'static'], resolverUrl: urls.get('instance-resolver') },
    ec2: { listen: listen(ec2Ports.get(f)!), secretsKey: EC2_SECRETS_KEY, ...(vmm === 'sim' ? {} : { devicePrefix: 'vd' }) },
  });
  const configs: Record<string, () => object> = {
    'volume-delegate': () => ({
      role: 'volume-delegate',
      name: 'local',
      listen: listen(0),
      ...metrics('volume-delegate'),
      tls: tls('volume-delegate'),
      ...(commands ? { commands } : {}),
      backend: backendType === 'file' ? { type: 'file', root: 'volumes' } : backendType === 'rbd' ? rbd! : lvmIscsiBackend(tgtdPorts),
    }),
    'vmm-delegate': () => ({
      role: 'vmm-delegate',
      hostName: 'localhost',
      listen: listen(0),
      ...metrics('vmm-delegate'),
      tls: tls('vmm-delegate'),
      ...(commands ? { commands } : {}),
      // Always explicit: a VMM delegate with no adapter refuses to start.
      adapter: vmm,
      volumeRoots: ['volumes'],
      ...(vmm === 'sim' ? { simState: 'vmm-sim' } : {}),
      ...(vmm === 'qemu' ? { qmpDir } : {}),
      ...(vmm === 'libvirt' ? { env: { LIBVIRT_DEFAULT_URI: 'qemu:///system' } } : {}),
    }),
    // Attach by instance id: a VM's own name (scan), then the operator's map (static).
    'instance-resolver': () => ({
      role: 'instance-resolver',
      listen: listen(0),
      ...metrics('instance-resolver'),
      tls: tls('instance-resolver'),
      ...(commands ? { commands } : {}),
      static: { file: INSTANCE_MAP },
    }),
    ...Object.fromEntries(fronts.map((f) => [f, frontConfig(f)])),
  };
  const configFile = (role: Role) => join(dir, `${role}.json`);
  const serve = (role: Role): SupervisedService => ({
    name: role,
    logFile: logs.path(role),
    start: (abort) =>
      startServe(
        {
          cli: CLI,
          role: role.startsWith('front') ? 'front' : role,
          configFile: configFile(role),
          cwd: dir,
          log: logs.stream(role),
          logFile: logs.path(role),
          readyTimeoutMs: READY_TIMEOUT_MS,
          ...(opts.cpuProfileDir === undefined ? {} : { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${resolve(opts.cpuProfileDir, role)}`] }),
        },
        abort,
      ),
  });
  const services: SupervisedService[] = [
    ...(tgtdPorts
      ? [{ name: 'tgtd', logFile: logs.path('tgtd'), dependents: ['volume-delegate'], start: () => startTgtd(logs.stream('tgtd'), logs.path('tgtd'), tgtdPorts) }]
      : []),
    ...ROLES.map(serve),
  ];
  const supervisor = new Supervisor(services, {
    report: opts.report ?? ((line) => process.stderr.write(`${line}\n`)),
    log: (service, level, msg, fields) => logs.line(service, level, msg, fields),
  });
  const stop = async () => {
    await supervisor.stop();
    await logs.close();
  };
  try {
    // Each service's configuration is written just before its first start;
    // then its port is pinned there, for its restarts.
    writeJson(configFile('volume-delegate'), configs['volume-delegate']!());
    writeJson(configFile('vmm-delegate'), configs['vmm-delegate']!());
    writeJson(configFile('instance-resolver'), configs['instance-resolver']!());
    if (!existsSync(join(dir, INSTANCE_MAP))) writeJson(join(dir, INSTANCE_MAP), {});
    await supervisor.startAll((name, handle) => {
      const role = ROLES.find((r) => r === name);
      if (!role || !handle.url) return;
      urls.set(role, handle.url);
      writeJson(configFile(role), { ...configs[role]!(), listen: listen(Number(new URL(handle.url).port)) });
      // The fronts' configurations name the delegates' and the resolver's URLs: written once they serve.
      if (role === 'instance-resolver') for (const f of fronts) writeJson(configFile(f), configs[f]!());
    });
    const frontUrls = fronts.map((f) => urls.get(f)!);
    const frontUrl = frontUrls[0]!;
    const clientConfig = join(dir, 'client.json');
    // Several fronts: all of them, the CLI going to the next when one does not answer (`url` stays the first, for older readers).
    writeJson(clientConfig, { url: frontUrl, ...(frontUrls.length > 1 ? { fronts: frontUrls } : {}), key: 'pki/admin.key', cert: 'pki/admin.crt', ca: 'pki/ca.crt' });
    const tgtd = supervisor.handle('tgtd');
    const storage =
      backendType === 'file'
        ? 'files in volumes/'
        : rbd
          ? `RBD images in pool ${rbd.pool} of the Ceph cluster of ${rbd.cephConf} (client.${rbd.clientId})`
          : `LVs of the simulated VG ${SIM_VG}, iSCSI targets on ${tgtdPorts && tgtd ? `a real tgtd at 127.0.0.1:${tgtdPorts.port} (PID ${tgtd.pid})` : 'the simulated IET'}`;
    const vmmHost =
      vmm === 'sim'
        ? 'localhost (simulated), VMs vm1 vm2 vm3'
        : vmm === 'libvirt'
          ? 'localhost, libvirt domains of qemu:///system'
          : vmm === 'qemu'
            ? `localhost, QEMU VMs with QMP sockets <vmId>.qmp in ${qmpDir}`
            : `localhost, adapter ${vmm}`;
    const ec2Urls = fronts.map((f) => `https://127.0.0.1:${ec2Ports.get(f)}/`);
    return { frontUrl, frontUrls, clientConfig, stop, gaveUp: supervisor.gaveUp, storage, vmmHost, metrics: writeScrapeTargets(dir, metricsPort), ec2Url: ec2Urls[0]!, ec2Urls };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * The metadata database of the fronts' configuration: a SQLite file in the
 * data folder, which several fronts share through WAL and BEGIN IMMEDIATE
 * (src/db/database.ts), or a PostgreSQL URL (src/db/postgres.ts).
 */
function metadataDatabase(asked: string | undefined): string {
  if (asked === undefined || asked === 'sqlite') return 'vbs.db';
  if (/^postgres(ql)?:\/\//.test(asked)) return asked;
  if (asked.includes('://')) throw new Error(`--db: '${asked.replace(/\/\/[^@/]*@/, '//…@')}' is neither a SQLite file nor a postgres:// URL`);
  return asked;
}

/** The adapter an operator's own commands.properties names, if any. */
function operatorsAdapter(commands: string | undefined): string | undefined {
  return commands ? CommandCatalog.fromFile(commands).setting('vmm.adapter') : undefined;
}

/**
 * The lvm-iscsi back end on the host simulator's VG: targets on a real tgtd
 * when one runs here (its portal is real), else on the simulated IET.
 */
function lvmIscsiBackend(tgtd: TgtdPorts | undefined): object {
  return {
    type: 'lvm-iscsi',
    vg: SIM_VG,
    iqnPrefix: IQN_PREFIX,
    stateDir: 'volume-delegate-state',
    simState: 'vmm-sim',
    ...(tgtd ? { target: 'tgt', portal: `127.0.0.1:${tgtd.port}`, tgtControlPort: tgtd.controlPort } : { target: 'iet', portal: '127.0.0.1:3260' }),
  };
}

/**
 * The rbd back end on an existing Ceph cluster. Paths are made absolute (the
 * delegate's configuration lives in the data folder); the files must exist
 * now: a typo is an error of `vbs up`, not of the first create.
 */
function rbdBackend(ceph: CephOptions | undefined): { type: 'rbd'; cephConf: string; keyring: string; pool: string; clientId: string } {
  if (!ceph?.conf) throw new Error('--backend rbd needs --ceph-conf FILE (the cluster\'s ceph.conf)');
  const cephConf = resolve(ceph.conf);
  const clientId = ceph.clientId ?? 'vbs';
  const keyring = resolve(ceph.keyring ?? join(dirname(cephConf), `ceph.client.${clientId}.keyring`));
  for (const [what, file] of [['--ceph-conf', cephConf], ['--ceph-keyring', keyring]] as const) {
    if (!existsSync(file)) throw new Error(`${what}: ${file} does not exist`);
  }
  const pool = ceph.pool ?? 'vbs';
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,126}$/.test(pool)) throw new Error(`--ceph-pool: '${pool}' is not a pool name`);
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$/.test(clientId)) throw new Error(`--ceph-id: '${clientId}' is not a cephx client id`);
  return { type: 'rbd', cephConf, keyring, pool, clientId };
}

/** The simulated volume group, created on first start. */
function seedSimVg(stateDir: string): void {
  const st = JSON.parse(execFileSync(process.execPath, [HOSTSIM, '--state', stateDir, 'dump'], { encoding: 'utf8' })) as { vgs: { name: string }[] };
  if (st.vgs.some((v) => v.name === SIM_VG)) return;
  execFileSync(process.execPath, [HOSTSIM, '--state', stateDir, 'lvm', 'vgcreate', SIM_VG, String(SIM_VG_BYTES)], { encoding: 'utf8' });
}

/**
 * The CA and identities of a one-machine deployment, in DIR/pki: the front
 * (server, and client of the delegates), the two delegates (servers on
 * loopback) and the admin. Kept when they exist. The revocation list
 * (DIR/pki/ca.crl) is created by up() (UserRegistry.ensureCrl).
 */
export function ensureDeploymentPki(dir: string): void {
  const pki = new PkiStore(join(dir, 'pki'));
  pki.ensureCa();
  const loopback = ['127.0.0.1', 'localhost'];
  pki.ensureIdentity('front', { commonName: 'vbs-front', use: 'server+client', hosts: loopback });
  pki.ensureIdentity('volume-delegate', { commonName: 'vbs-volume-delegate', use: 'server', hosts: loopback });
  pki.ensureIdentity('vmm-delegate', { commonName: 'vbs-vmm-delegate', use: 'server', hosts: loopback });
  pki.ensureIdentity('instance-resolver', { commonName: 'vbs-instance-resolver', use: 'server', hosts: loopback });
  // The deployment's own administrator: marked as one (reissued when an older VBS issued it unmarked).
  pki.ensureIdentity('admin', { commonName: DEPLOYMENT_ADMIN, use: 'client', admin: true });
}

function writeJson(file: string, value: object): void {
  writeAtomic(file, `${JSON.stringify(value, null, 2)}\n`, 0o600);
}

/** A simulated host with no VMs yet gets a few, so a new user has something to attach to. */
function seedSimVms(stateDir: string, vms: readonly string[]): void {
  const sim = (...args: string[]) => execFileSync(process.execPath, [HOSTSIM, '--state', stateDir, ...args], { encoding: 'utf8' });
  if ((JSON.parse(sim('vm', 'list')) as unknown[]).length > 0) return;
  for (const vm of vms) sim('vm', 'create', vm);
}
