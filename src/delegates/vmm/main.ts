import type { Logger } from '../../core/log.js';
import { DEFAULT_COMMANDS_FILE } from '../../core/paths.js';
import * as v from '../../core/validate.js';
import { CommandCatalog } from '../../commands/catalog.js';
import { CommandRunner } from '../../commands/runner.js';
import type { VmmDelegateConfig } from '../../config/service-config.js';
import { VMM_DELEGATE_SERVICE } from '../../services/vmm-delegate.js';
import type { RunningService } from '../../front/main.js';
import type { Handlers } from '../../soap/server.js';
import { listenDelegate } from '../listen.js';
import { FIXED_PARAMS, VmmAdapter, type DiskSource } from './adapter.js';

const notYet = () => {
  throw new Error('not built yet');
};

export function vmmDelegateHandlers(hostName: string, adapter: VmmAdapter): Handlers {
  return {
    DescribeHost: () => ({ hostName, adapter: adapter.name }),
    AttachDisk: async (i) => {
      v.volumeId(i.volumeId);
      await adapter.attach(v.vmId(i.vmId), v.device(i.device), v.attachMode(i.mode), (i.source ?? {}) as unknown as DiskSource);
      return { return: true };
    },
    DiscoverTarget: notYet,
    LoginTarget: notYet,
    LogoutTarget: notYet,
    ListDisks: notYet,
    DetachDisk: async (i) => {
      v.volumeId(i.volumeId);
      await adapter.detach(v.vmId(i.vmId), v.device(i.device));
      return { return: true };
    },
  };
}

export async function startVmmDelegate(cfg: VmmDelegateConfig, log: Logger): Promise<RunningService> {
  const catalog = CommandCatalog.fromFile(cfg.commands ?? DEFAULT_COMMANDS_FILE);
  const name = VmmAdapter.choose(catalog, cfg.adapter);
  const fixed = { ...FIXED_PARAMS, ...(cfg.simState ? { stateDir: cfg.simState } : {}) };
  const runner = new CommandRunner(catalog, { fixed, env: cfg.env, onRun: (key, argv) => log.debug('run', { key, argv }) });
  const adapter = new VmmAdapter(name, runner, cfg.volumeRoots);
  log.info('VMM adapter', { adapter: name, host: cfg.hostName });
  return listenDelegate(cfg, VMM_DELEGATE_SERVICE, vmmDelegateHandlers(cfg.hostName, adapter) as Handlers, log);
}
