import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { createSecureContext } from 'node:tls';
import { frontUrls, loadClientConfig } from '../config/client-config.js';
import { FailoverCaller } from './failover.js';
import { errorMessage } from '../core/errors.js';
import { SoapClient } from '../soap/client.js';
import type { ServiceDefinition } from '../soap/schema.js';
import type { Record as XmlRecord } from '../soap/xml.js';
import { UsageError } from './errors.js';

/**
 * The one thing commands need from a SOAP client. SoapClient satisfies it;
 * tests pass a fake so no command test needs a running service.
 */
export interface Caller {
  call(operation: string, input: XmlRecord): Promise<XmlRecord>;
  close?(): void;
}

export interface OutputStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
}

/**
 * Everything a command touches outside its own arguments. Commands never use
 * `process`, timers or the network directly, so tests can replace any of it.
 */
export interface CliRuntime {
  readonly stdout: OutputStream;
  readonly stderr: OutputStream;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  fileExists(path: string): boolean;
  /** Opens a client for `def` as the user described by the client configuration `configFile`. */
  connect(def: ServiceDefinition, configFile: string): Caller;
  sleep(ms: number): Promise<void>;
  now(): number;
  newClientToken(): string;
}

export function processRuntime(): CliRuntime {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    cwd: process.cwd(),
    fileExists: existsSync,
    connect: (def, file) => connectWithClientConfig(def, file, (line) => process.stderr.write(`${line}\n`)),
    sleep: (ms) => delay(ms),
    now: () => Date.now(),
    newClientToken: () => randomUUID(),
  };
}

/** How long a front may take to accept a connection before the next one is tried (client.json `connectTimeoutMs`). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;

/**
 * A real SoapClient, or one per front going to the next when one does not
 * answer (src/cli/failover.ts); a configuration that cannot be read is a
 * local (exit 2) error. `notice` is told when a call moves to another front.
 */
export function connectWithClientConfig(def: ServiceDefinition, configFile: string, notice: (line: string) => void = () => {}): Caller {
  let loaded;
  try {
    loaded = loadClientConfig(configFile);
  } catch (err) {
    throw new UsageError(errorMessage(err));
  }
  const { config, tls } = loaded;
  try {
    // Unreadable PEM would otherwise surface as an odd error at the first call.
    createSecureContext({ key: tls.key, cert: tls.cert, ca: tls.ca });
  } catch (err) {
    throw new UsageError(`client configuration ${configFile}: its key, certificate or CA cannot be used: ${errorMessage(err)}`);
  }
  const urls = frontUrls(config);
  const clientFor = (url: string) => new SoapClient({ def, url, tls, timeoutMs: config.timeoutMs, connectTimeoutMs: config.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS });
  if (urls.length === 1) return clientFor(urls[0]!);
  return new FailoverCaller(
    urls.map((url) => ({ url, caller: clientFor(url) })),
    (from, to, err) => notice(`vbs: ${from} did not answer (${err.message}); trying ${to}.`),
  );
}
