/**
 * A Nimbus service node, as far as VBS's nimbus resolver sees it:
 *
 *   - `elastic.db`, a real SQLite file with the EC2 frontends' table
 *     instances(elastic_id, manager_id, reservation_id, sshkey), which maps
 *     i-… ids to workspace ids (Nimbus since 2011, ElasticPersistence);
 *   - `nimbus-admin --list`, the admin tool of Nimbus 2.8+, printing the
 *     workspace service's VMs in its three formats: `key :  value` lines
 *     (the default), `--batch` (values joined by `-D`, a space by default)
 *     and `--json` (Gson, pretty-printed, every value a string or null).
 *
 * Both live in `<state>/nimbus/`. Management verbs (tests, not Nimbus):
 *   hostsim nimbus launch <i-id> <workspace id> <node> <creator DN> [--state S]
 *   hostsim nimbus state <workspace id> <state>
 *   hostsim nimbus terminate <workspace id>
 *   hostsim nimbus path                     prints the elastic.db path
 */
import Database from 'better-sqlite3';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Io } from './io.js';
import { withLock, writeFileAtomic } from './state.js';

/** The fields `nimbus-admin --list` reports, in its order. */
const VM_FIELDS = ['id', 'node', 'group_id', 'group_name', 'creator', 'state', 'start time', 'end time', 'memory', 'cpu count', 'uri'] as const;
type AdminVm = Record<(typeof VM_FIELDS)[number], string | null>;

/** Exit codes of Nimbus's admin clients (RemoteAdminToolsMain). */
const EXIT_PARAMETER_PROBLEM = 1;

export function elasticDbPath(dir: string): string {
  return join(dir, 'nimbus', 'elastic.db');
}

function vmsFile(dir: string): string {
  return join(dir, 'nimbus', 'vms.json');
}

function readVms(dir: string): AdminVm[] {
  try {
    return JSON.parse(readFileSync(vmsFile(dir), 'utf8')) as AdminVm[];
  } catch {
    return [];
  }
}

function openElastic(dir: string): Database.Database {
  mkdirSync(join(dir, 'nimbus'), { recursive: true });
  const db = new Database(elasticDbPath(dir));
  db.exec(`CREATE TABLE IF NOT EXISTS instances (
    elastic_id VARCHAR(64) PRIMARY KEY NOT NULL,
    manager_id VARCHAR(64) NOT NULL,
    reservation_id VARCHAR(64),
    sshkey VARCHAR(512)
  )`);
  return db;
}

function parameterProblem(io: Io, why: string): number {
  io.eprint(`Parameter Problem:\n\n${why}\nSee --help`);
  return EXIT_PARAMETER_PROBLEM;
}

/** `nimbus-admin --list [--host H] [--user U] [--dn DN] [--gid G] [--gname N] [--state S] [--json | --batch [-D d]]` */
export function nimbusAdminMain(io: Io, dir: string, args: string[]): number {
  const opts = new Map<string, string | true>();
  const valued = new Set(['--host', '--user', '--dn', '--gid', '--gname', '--state', '-D', '--delimiter']);
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (valued.has(a)) {
      const value = args[++i];
      if (value === undefined) return parameterProblem(io, `Missing argument for option: ${a.replace(/^-+/, '')}`);
      opts.set(a === '--delimiter' ? '-D' : a, value);
    } else if (['--list', '-l', '--json', '-j', '--batch', '-b'].includes(a)) {
      opts.set({ '-l': '--list', '-j': '--json', '-b': '--batch' }[a] ?? a, true);
    } else {
      return parameterProblem(io, `There are unrecognized arguments, check -h to make sure you are doing the intended thing: [${a}]`);
    }
  }
  if (!opts.has('--list')) return parameterProblem(io, 'You must specify an action');
  if (opts.has('--json') && opts.has('--batch')) return parameterProblem(io, 'You cannot specify both --batch and --json');
  if (opts.has('-D') && !opts.has('--batch')) return parameterProblem(io, 'delimiter only supported in Batch mode');
  const filters: [string, keyof AdminVm][] = [['--host', 'node'], ['--dn', 'creator'], ['--gid', 'group_id'], ['--gname', 'group_name'], ['--state', 'state']];
  let vms = readVms(dir);
  for (const [opt, field] of filters) {
    const want = opts.get(opt);
    if (typeof want === 'string') vms = vms.filter((vm) => vm[field] === want);
  }
  const user = opts.get('--user');
  if (typeof user === 'string') vms = vms.filter((vm) => vm.creator?.split('/').some((p) => p === `CN=${user}`));
  if (opts.has('--json')) {
    io.print(JSON.stringify(vms.map((vm) => Object.fromEntries(VM_FIELDS.map((f) => [f, vm[f] ?? null]))), null, 2));
    return 0;
  }
  if (opts.has('--batch')) {
    const d = opts.get('-D');
    const delimiter = typeof d === 'string' ? d : ' ';
    for (const vm of vms) io.print(VM_FIELDS.map((f) => vm[f] ?? '').join(delimiter));
    return 0;
  }
  const width = Math.max(...VM_FIELDS.map((f) => f.length));
  for (const vm of vms) {
    for (const f of VM_FIELDS) if (vm[f] !== null && vm[f] !== undefined) io.print(`${f.padEnd(width)} :  ${vm[f]}`);
    io.print('');
  }
  return 0;
}

/** The management verbs: launch, state, terminate, path. */
export function nimbusManage(io: Io, dir: string, args: string[]): number {
  const [verb, ...rest] = args;
  const usage = () => {
    io.eprint('usage: hostsim nimbus launch <i-id> <workspace id> <node> <creator DN> [--state S] | state <id> <state> | terminate <id> | path');
    return 2;
  };
  switch (verb) {
    case 'path':
      io.print(elasticDbPath(dir));
      return 0;
    case 'launch': {
      const stateAt = rest.indexOf('--state');
      const state = stateAt >= 0 ? rest[stateAt + 1] : 'Running';
      const positional = stateAt >= 0 ? rest.slice(0, stateAt) : rest;
      const [elasticId, id, node, creator] = positional;
      if (positional.length !== 4 || !elasticId || !id || !/^[0-9]+$/.test(id) || !node || !creator || !state) return usage();
      return withLock(dir, () => {
        const db = openElastic(dir);
        try {
          db.prepare('INSERT INTO instances (elastic_id, manager_id, reservation_id, sshkey) VALUES (?, ?, ?, NULL)').run(elasticId, id, `r-${id.padStart(8, '0')}`);
        } catch (err) {
          io.eprint(`hostsim: ${(err as Error).message}`);
          return 1;
        } finally {
          db.close();
        }
        const vms = readVms(dir).filter((vm) => vm.id !== id);
        const start = new Date().toISOString();
        vms.push({
          id,
          node,
          group_id: null,
          group_name: null,
          creator,
          state,
          'start time': start,
          'end time': new Date(Date.parse(start) + 3600_000).toISOString(),
          memory: '512',
          'cpu count': '1',
          uri: `https://nimbus.example.org:8443/wsrf/services/WorkspaceService#${id}`,
        });
        mkdirSync(join(dir, 'nimbus'), { recursive: true });
        writeFileAtomic(vmsFile(dir), JSON.stringify(vms, null, 2));
        return 0;
      });
    }
    case 'state':
    case 'terminate': {
      const [id, state] = rest;
      if (!id || (verb === 'state' ? rest.length !== 2 || !state : rest.length !== 1)) return usage();
      return withLock(dir, () => {
        const vms = readVms(dir);
        const vm = vms.find((x) => x.id === id);
        if (!vm) {
          io.eprint(`hostsim: no Nimbus VM ${id}`);
          return 1;
        }
        const next = verb === 'state' ? vms.map((x) => (x === vm ? { ...x, state: state! } : x)) : vms.filter((x) => x !== vm);
        writeFileAtomic(vmsFile(dir), JSON.stringify(next, null, 2));
        return 0;
      });
    }
    default:
      return usage();
  }
}
