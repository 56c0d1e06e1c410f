import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import type { TlsMaterial } from '../core/service.js';

/** At most this many fronts in one configuration: each is tried in turn, so a long list only slows the failure. */
export const MAX_FRONTS = 16;

const FrontUrl = z.string().url();

/**
 * What the CLI needs to reach the front as one user: the service URL(s) and
 * that user's key and certificate. File paths are relative to the config file.
 *
 * Several fronts on one database (docs/operators/multi-front.md) are named
 * either as a list in `url` or in `fronts` (`url` then stays the first, for
 * older readers); the CLI goes to the next when one does not answer.
 */
export const ClientConfigSchema = z
  .object({
    url: z.union([FrontUrl, z.array(FrontUrl).min(1).max(MAX_FRONTS)]).optional(),
    fronts: z.array(FrontUrl).min(1).max(MAX_FRONTS).optional(),
    key: z.string().min(1),
    cert: z.string().min(1),
    ca: z.string().min(1),
    timeoutMs: z.number().int().positive().optional(),
    /** How long to wait for a front to accept the connection before trying the next (default 5 s). */
    connectTimeoutMs: z.number().int().positive().optional(),
  })
  .strict()
  .refine((c) => c.url !== undefined || c.fronts !== undefined, { message: 'name the front: url (one URL or a list) or fronts (a list)', path: ['url'] })
  .refine((c) => frontUrls(c).length <= MAX_FRONTS, { message: `at most ${MAX_FRONTS} fronts`, path: ['fronts'] });

export type ClientConfig = z.infer<typeof ClientConfigSchema>;

/** The fronts a configuration names, in the order they are tried: `url`'s, then `fronts`', each once. */
export function frontUrls(c: { readonly url?: string | readonly string[]; readonly fronts?: readonly string[] }): string[] {
  const all = [...(c.url === undefined ? [] : typeof c.url === 'string' ? [c.url] : c.url), ...(c.fronts ?? [])];
  return [...new Set(all)];
}

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
