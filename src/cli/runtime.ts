import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { createSecureContext } from 'node:tls';
import { loadClientConfig } from '../config/client-config.js';
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
    connect: connectWithClientConfig,
    sleep: (ms) => delay(ms),
    now: () => Date.now(),
    newClientToken: () => randomUUID(),
  };
}

/** A real SoapClient; a configuration that cannot be read is a local (exit 2) error. */
export function connectWithClientConfig(def: ServiceDefinition, configFile: string): Caller {
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
  return new SoapClient({ def, url: config.url, tls, timeoutMs: config.timeoutMs });
}
