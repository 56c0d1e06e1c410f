import type { Logger } from '../core/log.js';
import { DEFAULT_COMMANDS_FILE } from '../core/paths.js';
import { CommandCatalog } from '../commands/catalog.js';
import { CommandRunner } from '../commands/runner.js';
import type { InstanceResolverConfig } from '../config/service-config.js';
import { FIXED_PARAMS } from '../delegates/vmm/adapter.js';
import { listenDelegate } from '../delegates/listen.js';
import type { RunningService } from '../core/service.js';
import { INSTANCE_RESOLVER_SERVICE } from '../services/instance-resolver.js';
import { CLOUDS } from './clouds/index.js';
import { CommandResolver } from './command-resolver.js';
import { NimbusResolver } from './nimbus.js';
import { instanceResolverHandlers } from './service.js';
import { StaticResolver } from './static.js';
import type { InstanceResolver } from './types.js';

/** The resolvers a configuration asks for; a cloud without a parser or a pattern is a start-up error. */
export function resolversOf(cfg: InstanceResolverConfig, catalog: CommandCatalog, log: Logger): InstanceResolver[] {
  const fixed = { ...FIXED_PARAMS, ...(cfg.simState ? { stateDir: cfg.simState } : {}) };
  const runner = new CommandRunner(catalog, { fixed, env: cfg.env, onRun: (key, argv) => log.debug('run', { key, argv }) });
  const variant = cfg.simState ? 'sim' : undefined;
  const out: InstanceResolver[] = [];
  if (cfg.nimbus) {
    catalog.requireAll(['resolver.nimbus.list']);
    out.push(new NimbusResolver(runner, { ...cfg.nimbus, variant }));
  }
  for (const [name, settings] of Object.entries(cfg.clouds)) {
    const cloud = CLOUDS[name];
    if (!cloud) throw new Error(`clouds.${name}: no such cloud; known: ${Object.keys(CLOUDS).join(', ')}`);
    catalog.requireAll([`resolver.${name}.show`]);
    out.push(new CommandResolver(cloud, runner, { ...settings, variant }));
  }
  if (cfg.static) out.push(new StaticResolver(cfg.static.file, log));
  return out;
}

/** `vbs serve instance-resolver`: the front's only peer for instance ids that need a cloud's tools. */
export async function startInstanceResolver(cfg: InstanceResolverConfig, log: Logger): Promise<RunningService> {
  const catalog = CommandCatalog.fromFile(cfg.commands ?? DEFAULT_COMMANDS_FILE);
  const resolvers = resolversOf(cfg, catalog, log);
  log.info('instance resolvers', { resolvers: resolvers.map((r) => r.name) });
  return listenDelegate(cfg, INSTANCE_RESOLVER_SERVICE, instanceResolverHandlers(resolvers, log), log);
}
