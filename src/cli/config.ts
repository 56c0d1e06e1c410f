import { join, resolve } from 'node:path';
import { UsageError } from './errors.js';
import type { CliRuntime } from './runtime.js';

/** Where `vbs up` writes the client configuration of the all-in-one deployment. */
export const DEFAULT_CLIENT_CONFIG = join('vbs-data', 'client.json');
export const CONFIG_ENV = 'VBS_CONFIG';

export type ConfigSource = 'flag' | 'env' | 'default';

/**
 * Finds the client configuration: --config, then $VBS_CONFIG, then
 * ./vbs-data/client.json if `vbs up` has been run here. An explicitly named
 * file is returned even if missing, so the error names the file the user chose.
 */
export function findClientConfig(
  flag: string | undefined,
  runtime: Pick<CliRuntime, 'env' | 'cwd' | 'fileExists'>,
): { file: string; source: ConfigSource } {
  if (flag) return { file: resolve(runtime.cwd, flag), source: 'flag' };
  const fromEnv = runtime.env[CONFIG_ENV];
  if (fromEnv) return { file: resolve(runtime.cwd, fromEnv), source: 'env' };
  const local = resolve(runtime.cwd, DEFAULT_CLIENT_CONFIG);
  if (runtime.fileExists(local)) return { file: local, source: 'default' };
  throw new UsageError(
    `no client configuration: run \`vbs up\` to start VBS here (it writes ./${DEFAULT_CLIENT_CONFIG.replace(/\\/g, '/')}), ` +
      `or pass --config FILE (or set ${CONFIG_ENV}).`,
  );
}
