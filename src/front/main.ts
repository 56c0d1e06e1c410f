import type { AddressInfo } from 'node:net';
import type { Logger } from '../core/log.js';
import type { RunningService } from '../core/service.js';
import { defaultPublicUrl, readTls, type FrontConfig } from '../config/service-config.js';
import { openDatabase } from '../db/database.js';
import { Metadata } from '../db/metadata.js';
import { VmAssignments } from '../db/vm-assignments.js';
import { VBS_SERVICE } from '../services/vbs.js';
import { VOLUME_DELEGATE_SERVICE } from '../services/volume-delegate.js';
import { createSoapServer } from '../soap/server.js';
import { DelegatePool } from './delegates.js';
import { DelegateHealth } from './health.js';
import { CreationMonitor } from './monitor.js';
import { CopyWatcher } from './copy-watch.js';
import { InstanceLocator } from './instances.js';
import { FrontService } from './service.js';
import { FrontWorkflows } from './workflows.js';
import { everyUnlessRunning } from './pending-timer.js';
import { AuditFile, AuditTrail } from './audit.js';
import { administrators } from './access.js';
import { countMetadata } from '../core/metrics.js';
import { metadataCounts } from '../db/gauges.js';
import { Zones } from './zones.js';
import { startEc2, type Ec2Listener } from '../ec2/listen.js';

export type { RunningService };

/**
 * Starts the front: opens and migrates the metadata, listens, and then
 * finishes or undoes what a crash left in flight, in the background: a slow
 * host does not keep the front from answering, and a request on a resource
 * still being recovered is answered with the retryable ServiceUnavailable.
 */
export async function startFront(cfg: FrontConfig, log: Logger, hooks: { beforeStep?: (kind: string, step: string) => void } = {}): Promise<RunningService> {
  const db = openDatabase(cfg.database);
  const meta = new Metadata(db);
  const tls = readTls(cfg.tls);
  const delegates = DelegatePool.fromConfig(cfg, tls);
  const workflows = new FrontWorkflows(db, meta, delegates, log, hooks.beforeStep, {
    firstDelayMs: cfg.retryFirstDelayMs,
    maxDelayMs: cfg.retryMaxDelayMs,
    giveUpAfterMs: cfg.retryGiveUpMs,
  }, { leaseMs: cfg.claimLeaseMs });

  const instances = InstanceLocator.fromConfig(cfg.instances, delegates, tls, new VmAssignments(db));
  const zones = new Zones(cfg.region, delegates.volumeDelegateNames(), cfg.zones);
  zones.backfill(db);
  const audit = new AuditTrail(cfg.auditLog ? new AuditFile(cfg.auditLog) : undefined, administrators(cfg.admins));
  const service = new FrontService(
    meta,
    delegates,
    workflows,
    {
      admins: cfg.admins,
      quotas: cfg.quotas,
      audit,
      // A copy that just finished is not a difference: the long-poll brings its news within
      // moments, so the wait is twice the fallback poll's only while that is short.
      checkSettleMs: Math.max(1_000, 2 * Math.min(cfg.pollIntervalMs, 1_000) + 500),
      checkCallTimeoutMs: Math.min(cfg.delegateTimeoutMs, 10_000),
      zones,
    },
    instances,
  );
  let url = '';
  // Each volume delegate's image routes, reached with the front's own certificate.
  const imageChannels = new Map(cfg.volumeDelegates.map((d) => [d.name.toLowerCase(), { def: VOLUME_DELEGATE_SERVICE, url: d.url, tls, name: `${VOLUME_DELEGATE_SERVICE.name} ${d.name}` }]));
  const server = createSoapServer({
    def: VBS_SERVICE,
    handlers: service.handlers(),
    streams: service.imageRoutes(imageChannels, { maxBytes: cfg.images.maxMiB * 1024 * 1024, idleMs: cfg.images.idleSeconds * 1000 }),
    tls,
    log,
    publicUrl: () => url,
    beforeAnswer: (outcome) => audit.record(outcome),
    crlFile: cfg.tls.crl,
    maxAnonymousConnections: cfg.tls.maxAnonymousConnections,
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.listen.port, cfg.listen.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  url = cfg.publicUrl ?? defaultPublicUrl({ host: cfg.listen.host, port }, VBS_SERVICE.path);
  // The EC2 Query API (issue 18): the same operations, signed with access keys instead of client certificates.
  let ec2: Ec2Listener | undefined;
  if (cfg.ec2) {
    try {
      ec2 = await startEc2(cfg.ec2, db, tls, service.handlers(), cfg.region, log, (o) => audit.record(o));
    } catch (err) {
      server.close();
      throw err;
    }
  }

  // A finished copy is learnt from a long-poll of its delegate; the monitor's poll is the fallback.
  const monitor = new CreationMonitor(meta, delegates, log, cfg.pollIntervalMs);
  const watcher = new CopyWatcher(delegates, monitor, log);
  workflows.onCopyStarted = (delegate) => watcher.wake(delegate);
  watcher.wakeAll();
  monitor.start();
  // What a crash left in flight. recover() never throws: a workflow it cannot finish is retried later.
  // Then what was kept for later (undos, stalled work) is tried once at once:
  // its back-off was about hosts the last front saw down, and this one's
  // health probes start with every host up, so no return of theirs is seen.
  void workflows.engine
    .recover()
    .then(async (n) => {
      if (n) log.info('recovered interrupted workflows', { count: n });
      await workflows.engine.resume({ notDueToo: true });
    })
    .catch((err: unknown) => log.error('trying kept work after the start failed; the timer retries it', { err }));
  // Unfinished work whose next attempt is due; each piece is claimed, so no two runners run it at once.
  const stopPending = everyUnlessRunning(() => workflows.engine.resume(), Math.min(5_000, cfg.retryFirstDelayMs), (err) =>
    log.error('retrying unfinished work failed', { err }),
  );
  // A delegate back from an outage: what waited on it is done now.
  const health = new DelegateHealth(delegates, log, cfg.healthIntervalMs, async () => {
    await workflows.engine.resume({ notDueToo: true });
    await monitor.pollOnce();
    watcher.wakeAll();
    await service.reconcile(log);
  });
  // A zone whose delegates do not answer is impaired or unavailable (DescribeAvailabilityZones, CreateVolume).
  zones.watch(
    (d) => health.volumeDelegateDown(d),
    (names) => health.recheckVolumeDelegates(names),
  );
  health.start();
  const uncount = countMetadata(() => metadataCounts(db));
  log.info('VBS front listening', { url });

  return {
    server,
    url,
    close: async () => {
      uncount();
      monitor.stop();
      watcher.stop();
      health.stop();
      stopPending();
      workflows.engine.stop();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      await ec2?.close();
      delegates.close();
      instances.close();
      audit.close();
      db.close();
    },
  };
}
