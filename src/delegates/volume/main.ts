import type { Logger } from '../../core/log.js';
import { DEFAULT_COMMANDS_FILE, VBS_HOME } from '../../core/paths.js';
import { CommandCatalog } from '../../commands/catalog.js';
import { commandHelper } from '../../commands/helper-client.js';
import { CommandRunner } from '../../commands/runner.js';
import type { VolumeDelegateConfig } from '../../config/service-config.js';
import { VOLUME_DELEGATE_SERVICE } from '../../services/volume-delegate.js';
import type { RunningService } from '../../core/service.js';
import { VOLUME_GENERATION_RULES } from '../generation-rules.js';
import { GenerationMemory, guardGenerations } from '../generations.js';
import { listenDelegate } from '../listen.js';
import type { VolumeBackend } from './backend.js';
import { DEFAULT_MAX_IMPORTS, FileBackend } from './file-backend.js';
import { ImageIntake } from './image-intake.js';
import { targetPatterns, targetTool } from './iscsi-targets.js';
import { LvmIscsiBackend } from './lvm-iscsi-backend.js';
import { LvmTools } from './lvm-tools.js';
import { RbdBackend } from './rbd-backend.js';
import { RbdTools } from './rbd-tools.js';
import { volumeDelegateHandlers } from './service.js';
import { ObjectRecords } from './object-records.js';
import { imageRoutes } from './image-routes.js';
import { meterCapacity } from './capacity-metrics.js';

export const FILE_BACKEND_PATTERNS = ['volume.file.create', 'volume.file.snapshot', 'volume.file.clone', 'volume.file.resize', 'volume.file.delete'];
export const LVM_PATTERNS = [
  'volume.lvm.list',
  'volume.lvm.vgs',
  'volume.lvm.path',
  'volume.lvm.create',
  'volume.lvm.snapshot',
  'volume.lvm.rename',
  'volume.lvm.remove',
  'volume.lvm.copy',
];
export const RBD_PATTERNS = [
  'volume.rbd.list',
  'volume.rbd.create',
  'volume.rbd.snap-create',
  'volume.rbd.snap-protect',
  'volume.rbd.snap-unprotect',
  'volume.rbd.snap-rename',
  'volume.rbd.snap-rm',
  'volume.rbd.children',
  'volume.rbd.clone',
  'volume.rbd.resize',
  'volume.rbd.flatten',
  'volume.rbd.rename',
  'volume.rbd.rm',
  'volume.rbd.df',
];
export const LVM_THIN_PATTERNS = ['volume.lvm.thin.create', 'volume.lvm.thin.snapshot', 'volume.lvm.thin.resize'];

type LvmIscsiConfig = Extract<VolumeDelegateConfig['backend'], { type: 'lvm-iscsi' }>;
type RbdConfig = Extract<VolumeDelegateConfig['backend'], { type: 'rbd' }>;

export async function startVolumeDelegate(cfg: VolumeDelegateConfig, log: Logger): Promise<RunningService> {
  const catalog = CommandCatalog.fromFile(cfg.commands ?? DEFAULT_COMMANDS_FILE);
  const backend = await openBackend(cfg.backend, catalog, log, { commandConcurrency: cfg.commandConcurrency });
  // Checked before any host command: a call older than one already acted on is refused.
  const memory = new GenerationMemory(cfg.generationsFile ?? ':memory:');
  // Beside the data: what rebuilds the front's metadata if it is lost (vbs admin rebuild).
  const records = cfg.recordsDir ? new ObjectRecords(cfg.recordsDir) : undefined;
  const handlers = guardGenerations(volumeDelegateHandlers(backend, records), VOLUME_GENERATION_RULES, memory);
  const unmeter = meterCapacity(cfg.name, backend, log);
  // Closing answers every WaitObjects held open, so none outlives the service.
  return listenDelegate(
    cfg,
    VOLUME_DELEGATE_SERVICE,
    handlers,
    log,
    () => {
      unmeter();
      backend.changes.close();
      memory.close();
    },
    imageRoutes(backend),
  );
}

/** The configured back end, refusing to start when commands.properties lacks a pattern it will run. */
export async function openBackend(
  cfg: VolumeDelegateConfig['backend'],
  catalog: CommandCatalog,
  log: Logger,
  o: { commandConcurrency?: number } = {},
): Promise<VolumeBackend> {
  const onRun = (key: string, argv: readonly string[]) => log.debug('run', { key, argv });
  // Independent requests run their commands side by side, up to this many at once.
  const maxConcurrent = o.commandConcurrency ?? DEFAULT_COMMAND_CONCURRENCY;
  // Commands start in a small helper process, off this delegate's event loop (src/commands/helper-client.ts).
  const helper = commandHelper();
  if (cfg.type === 'file') {
    catalog.requireAll(FILE_BACKEND_PATTERNS);
    const { capacityGiB, reservePercent, reserveGiB, maxImports } = cfg;
    return new FileBackend(cfg.root, new CommandRunner(catalog, { onRun, maxConcurrent, helper }), log, { capacityGiB, reservePercent, reserveGiB, maxImports });
  }
  if (cfg.type === 'rbd') return openRbd(cfg, catalog, log, onRun, maxConcurrent);
  return openLvmIscsi(cfg, catalog, log, onRun, maxConcurrent);
}

async function openRbd(
  cfg: RbdConfig,
  catalog: CommandCatalog,
  log: Logger,
  onRun: (key: string, argv: readonly string[]) => void,
  maxConcurrent: number,
): Promise<RbdBackend> {
  catalog.requireAll(RBD_PATTERNS);
  const runner = new CommandRunner(catalog, {
    onRun,
    maxConcurrent,
    helper: commandHelper(),
    fixed: { cephConf: cfg.cephConf, cephId: cfg.clientId, keyring: cfg.keyring, timeoutSec: cfg.timeoutSec },
    // An rbd call waits at most timeoutSec for the monitors, and as long again for each
    // operation; the process is stopped well after that (`<key>.timeoutMs` overrides).
    timeoutMs: (3 * cfg.timeoutSec + 30) * 1000,
    // Ceph reads CEPH_ARGS and the default config search path: neither may change what a pattern says.
    env: { CEPH_ARGS: '' },
  });
  return RbdBackend.open(
    {
      tools: new RbdTools(runner, cfg.pool, log),
      capacityGiB: cfg.capacityGiB,
      maxCloneDepth: cfg.maxCloneDepth,
      cephConf: cfg.cephConf,
      // Set whenever the configuration was read from its file (loadServiceConfig gives the default).
      ...(cfg.stagingDir ? { images: { intake: new ImageIntake(runner, cfg.maxImports ?? DEFAULT_MAX_IMPORTS), stagingDir: cfg.stagingDir } } : {}),
    },
    log,
  );
}

/** Host commands a volume delegate runs at once unless configured (commandConcurrency). */
export const DEFAULT_COMMAND_CONCURRENCY = 8;

async function openLvmIscsi(
  cfg: LvmIscsiConfig,
  catalog: CommandCatalog,
  log: Logger,
  onRun: (key: string, argv: readonly string[]) => void,
  maxConcurrent: number,
): Promise<LvmIscsiBackend> {
  catalog.requireAll([...LVM_PATTERNS, ...(cfg.thinPool ? LVM_THIN_PATTERNS : []), ...targetPatterns(cfg.target)]);
  const variant = cfg.simState ? ('sim' as const) : undefined;
  if (variant && cfg.thinPool) throw new Error('volume-delegate: the host simulator has no thin pools; drop thinPool or simState');
  const runner = new CommandRunner(catalog, {
    onRun,
    maxConcurrent,
    helper: commandHelper(),
    // Values every pattern may use; stateDir is the simulator's, for `.sim` variants.
    fixed: { node: process.execPath, vbsHome: VBS_HOME, stateDir: cfg.simState, controlPort: cfg.tgtControlPort },
    env: { LVM_SUPPRESS_FD_WARNINGS: '1' },
  });
  return LvmIscsiBackend.open(
    {
      lvm: new LvmTools(runner, cfg.vg, variant, log),
      targets: targetTool(cfg.target, runner, variant, cfg.chap),
      iqnPrefix: cfg.iqnPrefix,
      portal: cfg.portal,
      stateDir: cfg.stateDir,
      copyChunkMiB: cfg.copyChunkMiB,
      thinPool: cfg.thinPool,
      capacityGiB: cfg.capacityGiB,
      intake: new ImageIntake(runner, DEFAULT_MAX_IMPORTS),
    },
    log,
  );
}
