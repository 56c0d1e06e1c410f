import { parseFilters, parseMaxResults, MAX_RESULTS, type ListKind } from '../front/query.js';
import type { ListFilter, Page, PageInput } from './api.js';
import { checkLocally, CliFailure, UsageError } from './errors.js';
import type { Invocation } from './context.js';

/**
 * describe-volumes and describe-snapshots page through everything by default,
 * as the AWS CLI does: pages of 1,000 until the front sends no nextToken.
 * `--max-results N` asks for one page of N and prints the token that
 * continues it; `--starting-token T` starts after T (one page with
 * --max-results, else everything that remains). `--filter name=value`,
 * repeated; values of one name are ORed, names ANDed.
 */

/** What a listing got: with onePage (--max-results), the token that continues it. */
export interface Listed<T> {
  readonly items: T[];
  readonly nextToken?: string;
  readonly onePage: boolean;
}

/**
 * Prints a listing: every record as today (a table, or a JSON array); one
 * page as the table and a `NextToken:` line, or under --json as
 * {"<plural>": [...], "nextToken": "..."}, the shape of the AWS CLI's pages.
 */
export function printListing<T>(inv: Invocation, plural: string, listed: Listed<T>, table: (items: T[]) => string): void {
  if (!listed.onePage) return inv.print(listed.items, table);
  inv.print({ [plural]: listed.items, nextToken: listed.nextToken }, () => table(listed.items) + (listed.nextToken ? `NextToken: ${listed.nextToken}\n` : ''));
}

export interface ListingOptions {
  readonly filter: string[];
  readonly maxResults?: string;
  readonly startingToken?: string;
}

/** Commander's collector for a repeatable option. */
export const collect = (value: string, previous: string[]): string[] => [...previous, value];

export const FILTER_HELP: Readonly<Record<ListKind, string>> = {
  volume: 'only volumes matching (repeat it; one name\'s values are ORed, names ANDed): status, size, snapshotId, attachment.vmmHost, attachment.vmId, attachment.status, attachment.instanceId, attachment.device, volumeId, availabilityZone, tag:KEY, tagKey, owner (administrators), commentPrefix',
  snapshot: 'only snapshots matching (repeat it; one name\'s values are ORed, names ANDed): status, volumeId, snapshotId, size, tag:KEY, tagKey, owner (administrators), commentPrefix',
  tag: 'only tags matching (repeat it): key, value, resourceId, resourceType (volume or snapshot)',
  modification: 'only modifications matching (repeat it; one name\'s values are ORed, names ANDed): modificationState, volumeId, originalSize, targetSize, owner (administrators)',
};
export const MAX_RESULTS_HELP = 'one page of n (5-1000) and the token that continues it, instead of every page';
export const STARTING_TOKEN_HELP = 'start after the page that gave this token (from --max-results)';

/** The --filter values as the request's filters, checked here with the front's own rules. */
export function filtersOf(kind: ListKind, raw: readonly string[]): ListFilter[] {
  const byName = new Map<string, string[]>();
  for (const item of raw) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new UsageError(`--filter expects name=value, not '${item.slice(0, 64)}'.`);
    const name = item.slice(0, eq);
    byName.set(name, [...(byName.get(name) ?? []), item.slice(eq + 1)]);
  }
  const filter = [...byName].map(([name, value]) => ({ name, value }));
  // Scope 'all' here: whether this caller may filter by owner is the front's to say.
  checkLocally(() => parseFilters(kind, filter, { kind: 'all' }));
  return filter;
}

export function maxResultsOf(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  return checkLocally(() => parseMaxResults(/^[0-9]{1,6}$/.test(raw) ? Number(raw) : NaN));
}

/**
 * Runs a listing: the named ids in one call, one page with --max-results,
 * else every page.
 */
export async function runListing<T>(
  inv: Invocation,
  kind: ListKind,
  ids: readonly string[],
  opts: ListingOptions,
  fetch: (input: PageInput & { ids?: readonly string[] }) => Promise<Page<T>>,
): Promise<Listed<T>> {
  const filter = filtersOf(kind, opts.filter);
  const maxResults = maxResultsOf(opts.maxResults);
  if (ids.length && (maxResults !== undefined || opts.startingToken !== undefined)) {
    throw new UsageError(`Name ${kind} ids, or page with --max-results and --starting-token, not both.`, 'InvalidParameterCombination');
  }
  if (ids.length) return { items: (await fetch({ ids, filter })).items, onePage: false };
  if (maxResults !== undefined) {
    const page = await fetch({ filter, maxResults, nextToken: opts.startingToken });
    return { ...page, onePage: true };
  }
  const items: T[] = [];
  const seen = new Set<string>();
  let nextToken = opts.startingToken;
  for (;;) {
    const page = await fetch({ filter, maxResults: MAX_RESULTS, nextToken });
    items.push(...page.items);
    if (page.nextToken === undefined) return { items, onePage: false };
    // A front that handed out the same token twice would page forever.
    if (seen.has(page.nextToken)) throw new CliFailure('The front gave the same page token twice; stopped paging.');
    seen.add(page.nextToken);
    nextToken = page.nextToken;
  }
}
