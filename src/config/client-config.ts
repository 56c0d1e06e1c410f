import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import type { TlsMaterial } from '../core/service.js';

/**
 * What the CLI needs to reach the front as one user: the service URL and that
 * user's key and certificate. File paths are relative to the config file.
 */
export const ClientConfigSchema = z
  .object({
    url: z.string().url(),
    key: z.string().min(1),
    cert: z.string().min(1),
    ca: z.string().min(1),
    timeoutMs: z.number().int().positive().optional(),
  })
  .strict();

export type ClientConfig = z.infer<typeof ClientConfigSchema>;

export function loadClientConfig(file: string): { config: ClientConfig; tls: TlsMaterial } {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read client configuration ${file}: ${(err as Error).message}`);
  }
  const parsed = ClientConfigSchema.safeParse(raw);
  if (!parsed.success) throw new Error(`client configuration ${file} is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const base = dirname(resolve(file));
  const read = (p: string): string => readFileSync(resolve(base, p), 'utf8');
  const c = parsed.data;
  return { config: c, tls: { key: read(c.key), cert: read(c.cert), ca: read(c.ca) } };
}
