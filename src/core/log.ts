/**
 * Structured one-line JSON logs on stderr. Call sites pass fields, never
 * secrets: keys and certificates are never handed to the logger.
 */
import { currentRequestId } from './request-context.js';

export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: object): void;
  info(msg: string, fields?: object): void;
  warn(msg: string, fields?: object): void;
  error(msg: string, fields?: object): void;
  child(fields: object): Logger;
}

export function createLogger(base: object = {}, min: Level = (process.env.VBS_LOG_LEVEL as Level) || 'info'): Logger {
  const emit = (level: Level, msg: string, fields?: object): void => {
    if (ORDER[level] < (ORDER[min] ?? 20)) return;
    // Work done for a request (even after its response) carries its id.
    const requestId = currentRequestId();
    const line = { time: new Date().toISOString(), level, pid: process.pid, msg, ...(requestId ? { requestId } : {}), ...base, ...serialize(fields) };
    process.stderr.write(`${JSON.stringify(line)}\n`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (f) => createLogger({ ...base, ...f }, min),
  };
}

function serialize(fields?: object): object {
  if (!fields) return {};
  const out: { [k: string]: unknown } = {};
  for (const [k, v] of Object.entries(fields)) {
    out[k] = v instanceof Error ? { message: v.message, stack: v.stack, cause: v.cause instanceof Error ? v.cause.message : v.cause } : v;
  }
  return out;
}

export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => silentLogger,
};
