import type { Command } from '@commander-js/extra-typings';
import { resolve } from 'node:path';
import { createLogger, type Logger } from '../core/log.js';
import { loadServiceConfig, type ServiceConfig } from '../config/service-config.js';
import { startFront, type RunningService } from '../front/main.js';
import { startVolumeDelegate } from '../delegates/volume/main.js';
import { startVmmDelegate } from '../delegates/vmm/main.js';
import { startInstanceResolver } from '../resolver/main.js';
import { withMetrics } from '../core/metrics-listener.js';

const ROLES = ['front', 'volume-delegate', 'vmm-delegate', 'instance-resolver'] as const;
type Role = (typeof ROLES)[number];

/** Starts one service from its configuration file. */
export async function startService(role: Role, configFile: string, commandsFile?: string): Promise<RunningService> {
  const loaded = loadServiceConfig(configFile);
  const cfg = commandsFile ? { ...loaded, commands: resolve(commandsFile) } : loaded;
  if (cfg.role !== role) throw new Error(`${configFile} configures a ${cfg.role}, not a ${role}`);
  const log = createLogger({ service: role });
  return withMetrics(await startRole(cfg, log), cfg.metrics, log);
}

function startRole(cfg: ServiceConfig, log: Logger): Promise<RunningService> {
  switch (cfg.role) {
    case 'front':
      return startFront(cfg, log);
    case 'volume-delegate':
      return startVolumeDelegate(cfg, log);
    case 'vmm-delegate':
      return startVmmDelegate(cfg, log);
    case 'instance-resolver':
      return startInstanceResolver(cfg, log);
  }
}

/**
 * `vbs serve <role> --config FILE`: one service, for multi-node deployments.
 * It prints one JSON line {"ready": url, "metrics": url} on stdout once it accepts requests
 * (what `vbs up` waits for), and stops cleanly on SIGINT/SIGTERM.
 */
export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run one VBS service (front, volume-delegate, vmm-delegate or instance-resolver)')
    .argument('<role>', ROLES.join(' | '))
    .option('--commands <file>', "an operator's own commands.properties (overrides the configuration's)")
    .option('--exit-with-parent', 'stop when stdin closes (how `vbs up` makes sure no service outlives it)')
    // --config is the program's global option (the CLI's client configuration
    // elsewhere); for serve it names the service configuration.
    .action(async (role, opts, cmd) => {
      const config = (cmd.optsWithGlobals() as { config?: string }).config;
      if (!config) {
        process.stderr.write('vbs serve: --config FILE (the service configuration) is required\n');
        process.exit(2);
      }
      if (!(ROLES as readonly string[]).includes(role)) {
        process.stderr.write(`vbs: unknown role ${role}; expected ${ROLES.join(', ')}\n`);
        process.exit(2);
      }
      // Handlers before anything starts, so a signal never finds the default
      // action (which would skip closing the service).
      let service: RunningService | undefined;
      let stopping = false;
      const stop = () => {
        if (stopping) return;
        stopping = true;
        void (service?.close() ?? Promise.resolve()).finally(() => process.exit(0));
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      if (opts.exitWithParent) {
        process.stdin.on('data', () => {});
        process.stdin.once('end', stop);
        process.stdin.once('error', stop);
      }
      try {
        service = await startService(role as Role, config, opts.commands);
      } catch (err) {
        process.stderr.write(`vbs serve ${role}: ${(err as Error).message}\n`);
        process.exit(1);
      }
      if (stopping) return void service.close().finally(() => process.exit(0));
      process.stdout.write(`${JSON.stringify({ ready: service.url, pid: process.pid, ...(service.metricsUrl ? { metrics: service.metricsUrl } : {}) })}\n`);
    });
}
