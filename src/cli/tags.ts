import type { Command } from '@commander-js/extra-typings';
import * as validate from '../core/validate.js';
import type { TagInput } from './api.js';
import { invoke } from './context.js';
import { checkLocally, UsageError } from './errors.js';
import { formatTable } from './format.js';
import { collect, FILTER_HELP } from './listing.js';
import type { CliRuntime } from './runtime.js';

/** KEY=VALUE (VALUE may be empty); with `keyAlone`, KEY by itself too (delete-tags: any value). */
export function parseTag(text: string, keyAlone = false): TagInput {
  const eq = text.indexOf('=');
  if (eq < 0) {
    if (!keyAlone) throw new UsageError(`--tag ${text.slice(0, 64)}: expected KEY=VALUE`);
    return { key: checkLocally(() => validate.tagKey(text, 'tag key')) };
  }
  return { key: checkLocally(() => validate.tagKey(text.slice(0, eq), 'tag key')), value: checkLocally(() => validate.tagValue(text.slice(eq + 1), 'tag value')) };
}

/** `name=value[,value...]` filters, as the listings take them. */
function parseFilter(text: string): { name: string; value: string[] } {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new UsageError(`--filter ${text.slice(0, 64)}: expected NAME=VALUE[,VALUE...]`);
  return { name: text.slice(0, eq), value: text.slice(eq + 1).split(',') };
}

/** Tags on volumes and snapshots, and the zones volumes are created in (issue 18). */
export function registerTagCommands(program: Command, runtime: CliRuntime): void {
  program
    .command('create-tags')
    .description('put tags on volumes and snapshots (a key already there gets the new value)')
    .argument('<resource-id...>', 'vol-... or snap-... ids')
    .requiredOption('--tag <key=value>', 'a tag (repeat it)', collect, [] as string[])
    .action((ids, o, cmd) =>
      invoke(runtime, cmd, async (inv) => {
        const resources = ids.map((id) => checkLocally(() => validate.resourceId(id, 'resource-id')));
        await inv.vbs().createTags(resources, o.tag.map((t) => parseTag(t)));
      }),
    );

  program
    .command('delete-tags')
    .description('remove tags: KEY (any value) or KEY=VALUE (only that value); no --tag: every tag')
    .argument('<resource-id...>')
    .option('--tag <key[=value]>', 'a tag to remove (repeat it)', collect, [] as string[])
    .action((ids, o, cmd) =>
      invoke(runtime, cmd, async (inv) => {
        const resources = ids.map((id) => checkLocally(() => validate.resourceId(id, 'resource-id')));
        await inv.vbs().deleteTags(resources, o.tag.map((t) => parseTag(t, true)));
      }),
    );

  program
    .command('describe-tags')
    .description('the tags on your volumes and snapshots')
    .option('--filter <name=value>', FILTER_HELP.tag, collect, [] as string[])
    .action((o, cmd) =>
      invoke(runtime, cmd, async (inv) => {
        const api = inv.vbs();
        const filter = o.filter.map(parseFilter);
        const tags = [];
        let nextToken: string | undefined;
        do {
          const page = await api.describeTagsPage({ filter, maxResults: 1000, nextToken });
          tags.push(...page.items);
          nextToken = page.nextToken;
        } while (nextToken);
        inv.print(tags, (list) => (list.length ? formatTable(['RESOURCE', 'TYPE', 'KEY', 'VALUE'], list.map((t) => [t.resourceId, t.resourceType, t.key, t.value])) : 'No tags.\n'));
      }),
    );

  program
    .command('describe-availability-zones')
    .description('the zones (groups of volume delegates) volumes can be created in')
    .action((_o, cmd) =>
      invoke(runtime, cmd, async (inv) => {
        const zones = await inv.vbs().describeZones();
        inv.print(zones, (list) => formatTable(['ZONE', 'STATE', 'REGION'], list.map((z) => [z.zoneName, z.state, z.regionName])));
      }),
    );
}
