import type { Command } from '@commander-js/extra-typings';
import { redactUrl, validPostgresUrl } from '../db/postgres.js';
import { MAX_FRONTS, up, VMM_CHOICES, type VmmChoice } from '../deploy/all-in-one.js';

/**
 * `vbs up`: the all-in-one deployment on embedded defaults. Runs until
 * SIGINT/SIGTERM, then stops its services in reverse order. A service that
 * stops unexpectedly is restarted; one that keeps dying stops everything,
 * and `vbs up` exits 1.
 */
export function registerUp(program: Command): void {
  program
    .command('up')
    .description('run VBS on this machine: front, a volume delegate and a VMM host (simulated unless --vmm says otherwise) on 127.0.0.1, each restarted if it stops')
    .option('--data <dir>', 'state folder (metadata, volumes, certificates, logs)', './vbs-data')
    .option('--port <n>', 'port of the front service', '8443')
    .option('--commands <file>', 'an operator\'s own commands.properties')
    .option('--backend <type>', 'file (volumes as files), lvm-iscsi (LVs of a simulated VG, exported over iSCSI) or rbd (images of an existing Ceph cluster: --ceph-conf)', 'file')
    .option('--ceph-conf <file>', 'rbd only: the cluster\'s ceph.conf (scripts/ceph-up.sh DIR makes a throw-away one: DIR/ceph.conf)')
    .option('--ceph-pool <name>', 'rbd only: the RBD pool of the volumes', 'vbs')
    .option('--ceph-id <id>', 'rbd only: the cephx client VBS acts as (client.<id>)', 'vbs')
    .option('--ceph-keyring <file>', 'rbd only: its key file (default: ceph.client.<id>.keyring beside the conf)')
    .option('--target <daemon>', 'lvm-iscsi only: auto (a real tgtd when installed and root, else the simulated IET), iet or tgt', 'auto')
    .option('--vmm <adapter>', 'the VMM host\'s adapter: sim (simulated VMs vm1-vm3), libvirt (domains of qemu:///system) or qemu (QMP sockets); default: the --commands file\'s vmm.adapter, else sim')
    .option('--ec2-port <n>', 'port of the EC2 Query API (aws ec2 ... --endpoint-url); default 8773 (with --port 0: a free one); 0: a free one')
    .option('--fronts <n>', `how many fronts serve at once, on one metadata database (1 to ${MAX_FRONTS}; the first on --port, the others on free ports; docs/operators/multi-front.md)`, '1')
    .option('--db <database>', 'the metadata database of every front: a SQLite file in the data folder (default vbs.db), or postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE (docs/operators/postgresql.md)')
    .option('--max-image-mib <n>', 'the largest image import-image takes, in MiB (default 1048576: 1 TiB)')
    .option('--qmp-dir <dir>', 'qemu only: the folder of the VMs\' QMP sockets, <dir>/<vmId>.qmp (default DATA/qmp)')
    .option('--cpu-prof <dir>', 'profiling: run each service with node --cpu-prof, its profiles in <dir>/<service>/ when it stops (docs/operators/bench.md)')
    .action(async (opts) => {
      const port = Number(opts.port);
      const backend = opts.backend;
      if (backend !== 'file' && backend !== 'lvm-iscsi' && backend !== 'rbd') {
        process.stderr.write(`vbs: --backend must be file, lvm-iscsi or rbd\n`);
        process.exit(2);
      }
      if ((backend === 'rbd') !== (opts.cephConf !== undefined)) {
        process.stderr.write(backend === 'rbd' ? `vbs: --backend rbd needs --ceph-conf FILE\n` : `vbs: --ceph-conf goes with --backend rbd\n`);
        process.exit(2);
      }
      if (backend !== 'rbd' && (opts.cephKeyring !== undefined || opts.cephPool !== 'vbs' || opts.cephId !== 'vbs')) {
        process.stderr.write(`vbs: --ceph-pool, --ceph-id and --ceph-keyring go with --backend rbd\n`);
        process.exit(2);
      }
      const target = opts.target;
      if (target !== 'auto' && target !== 'iet' && target !== 'tgt') {
        process.stderr.write(`vbs: --target must be auto, iet or tgt\n`);
        process.exit(2);
      }
      const vmm = opts.vmm;
      if (vmm !== undefined && !(VMM_CHOICES as readonly string[]).includes(vmm)) {
        process.stderr.write(`vbs: --vmm must be ${VMM_CHOICES.join(', ')}\n`);
        process.exit(2);
      }
      if (opts.qmpDir !== undefined && vmm !== 'qemu') {
        process.stderr.write(`vbs: --qmp-dir goes with --vmm qemu\n`);
        process.exit(2);
      }
      if (opts.cpuProf !== undefined && (opts.cpuProf === '' || opts.cpuProf.includes('\0'))) {
        process.stderr.write(`vbs: --cpu-prof must name a folder\n`);
        process.exit(2);
      }
      if (!Number.isInteger(port) || port < 0 || port > 65535) {
        process.stderr.write(`vbs: --port must be a port number\n`);
        process.exit(2);
      }
      const fronts = Number(opts.fronts);
      if (!/^[0-9]+$/.test(opts.fronts) || fronts < 1 || fronts > MAX_FRONTS) {
        process.stderr.write(`vbs: --fronts must be a whole number from 1 to ${MAX_FRONTS}\n`);
        process.exit(2);
      }
      const sqliteName = (db: string) => /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/.test(db);
      if (opts.db !== undefined && (opts.db.includes('://') ? !validPostgresUrl(opts.db) : !sqliteName(opts.db))) {
        process.stderr.write(`vbs: --db must be a SQLite file name in the data folder (letters, digits, . _ -) or a postgres:// URL (postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE)\n`);
        process.exit(2);
      }
      const ec2Port = opts.ec2Port === undefined ? undefined : Number(opts.ec2Port);
      if (opts.ec2Port !== undefined && (!/^[0-9]{1,5}$/.test(opts.ec2Port) || ec2Port! > 65535 || (ec2Port === port && port !== 0))) {
        process.stderr.write(`vbs: --ec2-port must be a port number other than --port\n`);
        process.exit(2);
      }
      const maxImageMiB = opts.maxImageMib === undefined ? undefined : Number(opts.maxImageMib);
      if (opts.maxImageMib !== undefined && (!/^[0-9]{1,9}$/.test(opts.maxImageMib) || maxImageMiB! < 1)) {
        process.stderr.write(`vbs: --max-image-mib must be a whole number of MiB, 1 or more\n`);
        process.exit(2);
      }
      // Handlers first: a signal that arrives while the services start must
      // not kill `up` by default action. Services already started then see
      // their stdin close and stop themselves (`serve --exit-with-parent`).
      let stopping = false;
      let stopDeployment: (() => Promise<void>) | undefined;
      const stop = (code: number) => {
        if (stopping) return;
        stopping = true;
        void (stopDeployment?.() ?? Promise.resolve()).finally(() => process.exit(code));
      };
      process.once('SIGINT', () => stop(0));
      process.once('SIGTERM', () => stop(0));
      let dep;
      try {
        const ceph = opts.cephConf === undefined ? undefined : { conf: opts.cephConf, pool: opts.cephPool, clientId: opts.cephId, keyring: opts.cephKeyring };
        dep = await up({ dataDir: opts.data, port, commands: opts.commands, backend, target, vmm: vmm as VmmChoice | undefined, qmpDir: opts.qmpDir, ec2Port, ceph, fronts, database: opts.db, cpuProfileDir: opts.cpuProf, maxImageMiB });
      } catch (err) {
        if (stopping) return;
        process.stderr.write(`vbs up: ${(err as Error).message}\n`);
        process.exit(1);
      }
      stopDeployment = dep.stop;
      if (stopping) return void dep.stop().finally(() => process.exit(0));
      process.stdout.write(
        [
          `VBS is up: ${dep.frontUrl}`,
          ...(dep.frontUrls.length > 1 ? [`  Fronts:         ${dep.frontUrls.join(' ')}  (one database; the CLI goes to the next when one does not answer)`] : []),
          `  WSDL:           ${dep.frontUrl}?wsdl`,
          `  CLI config:     ${dep.clientConfig}  (export VBS_CONFIG=${dep.clientConfig})`,
          ...(dep.ec2Urls.length > 1 ? [`  EC2 APIs:       ${dep.ec2Urls.join(' ')}`] : []),
          `  EC2 API:        ${dep.ec2Url}  (aws ec2 ... --endpoint-url ${dep.ec2Url}; keys: vbs admin user keys create NAME --data ${opts.data} --out FOLDER)`,
          `  VMM host:       ${dep.vmmHost}`,
          ...(opts.db ? [`  Metadata:       ${opts.db.includes('://') ? redactUrl(opts.db) : opts.db}`] : []),
          `  Volumes:        ${dep.storage}`,
          `  Instance ids:   a VM's name (scan), or an id in instances.json (static)`,
          `  Metrics:        ${Object.entries(dep.metrics.urls).map(([role, url]) => `${role} ${url}`).join(', ')}`,
          `                  (Prometheus scrape targets: ${dep.metrics.targetsFile})`,
          `  Users:          vbs admin user add NAME --data ${opts.data} --out FOLDER  (revoke, renew, list, show)`,
          `Press Ctrl-C to stop.`,
          '',
        ].join('\n'),
      );
      void dep.gaveUp.then((message) => {
        if (stopping) return;
        process.stderr.write(`vbs up: ${message}\n`);
        stop(1);
      });
    });
}
