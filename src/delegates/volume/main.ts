import type { Logger } from '../../core/log.js';
import { DEFAULT_COMMANDS_FILE } from '../../core/paths.js';
import { CommandCatalog } from '../../commands/catalog.js';
import { CommandRunner } from '../../commands/runner.js';
import type { VolumeDelegateConfig } from '../../config/service-config.js';
import { VOLUME_DELEGATE_SERVICE } from '../../services/volume-delegate.js';
import type { RunningService } from '../../front/main.js';
import { listenDelegate } from '../listen.js';
import { FileBackend } from './file-backend.js';
import { volumeDelegateHandlers } from './service.js';

export const FILE_BACKEND_PATTERNS = ['volume.file.create', 'volume.file.snapshot', 'volume.file.clone', 'volume.file.resize', 'volume.file.delete'];

export async function startVolumeDelegate(cfg: VolumeDelegateConfig, log: Logger): Promise<RunningService> {
  const catalog = CommandCatalog.fromFile(cfg.commands ?? DEFAULT_COMMANDS_FILE);
  catalog.requireAll(FILE_BACKEND_PATTERNS);
  const runner = new CommandRunner(catalog, { onRun: (key, argv) => log.debug('run', { key, argv }) });
  const backend = new FileBackend(cfg.backend.root, runner, log, cfg.backend.capacityGiB);
  return listenDelegate(cfg, VOLUME_DELEGATE_SERVICE, volumeDelegateHandlers(backend), log);
}
