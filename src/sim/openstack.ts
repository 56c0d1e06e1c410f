/**
 * OpenStack's command-line client, as far as VBS's openstack resolver uses
 * it: `openstack server show <name or ID> [-f json|table]`, with the fields
 * Nova shows an admin (OS-EXT-SRV-ATTR:host, :hypervisor_hostname,
 * :instance_name, status, project_id, ...). An unknown server is the
 * client's message and exit code 1. Servers live in
 * `<state>/openstack/servers.json`. Management verbs (tests):
 *   hostsim nova add <uuid> <name> <host> <instance name> <project id> [--status S]
 *   hostsim nova status <uuid> <status>
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Io } from './io.js';
import { withLock, writeFileAtomic } from './state.js';

interface Server {
  id: string;
  name: string;
  host: string;
  instanceName: string;
  projectId: string;
  status: string;
  created: string;
}

function serversFile(dir: string): string {
  return join(dir, 'openstack', 'servers.json');
}

function readServers(dir: string): Server[] {
  try {
    return JSON.parse(readFileSync(serversFile(dir), 'utf8')) as Server[];
  } catch {
    return [];
  }
}

const POWER_STATE: Record<string, string> = { ACTIVE: 'Running', SHUTOFF: 'Shutdown', PAUSED: 'Paused', SUSPENDED: 'Shutdown' };

/** What `server show` prints to an admin, in the client's field order (alphabetical). */
function shown(s: Server): Record<string, unknown> {
  const fields: Record<string, unknown> = {
    'OS-DCF:diskConfig': 'MANUAL',
    'OS-EXT-AZ:availability_zone': 'nova',
    'OS-EXT-SRV-ATTR:host': s.host,
    'OS-EXT-SRV-ATTR:hypervisor_hostname': `${s.host}.localdomain`,
    'OS-EXT-SRV-ATTR:instance_name': s.instanceName,
    'OS-EXT-STS:power_state': POWER_STATE[s.status] ?? 'NOSTATE',
    'OS-EXT-STS:task_state': null,
    'OS-EXT-STS:vm_state': s.status === 'ACTIVE' ? 'active' : s.status.toLowerCase(),
    'OS-SRV-USG:launched_at': s.created,
    'OS-SRV-USG:terminated_at': null,
    accessIPv4: '',
    accessIPv6: '',
    addresses: { private: ['10.0.0.12'] },
    config_drive: '',
    created: s.created,
    flavor: 'm1.small (2)',
    hostId: 'c1a2b3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a7b8c9d0e1f2',
    id: s.id,
    image: 'cirros-0.6.2 (5f2a3c1e-8b7d-4e6f-9a0b-1c2d3e4f5a6b)',
    key_name: null,
    name: s.name,
    progress: 0,
    project_id: s.projectId,
    properties: {},
    security_groups: [{ name: 'default' }],
    status: s.status,
    updated: s.created,
    user_id: '9f8e7d6c5b4a39281706f5e4d3c2b1a0',
    volumes_attached: [],
  };
  return fields;
}

/** `openstack server show <server> [-f json|--format json]` */
export function openstackMain(io: Io, dir: string, args: string[]): number {
  if (args[0] !== 'server' || args[1] !== 'show') {
    io.eprint(`openstack: '${args.slice(0, 2).join(' ')}' is not an openstack command. See 'openstack --help'.`);
    return 2;
  }
  let format = 'table';
  const names: string[] = [];
  for (let i = 2; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-f' || a === '--format') format = args[++i] ?? '';
    else if (a.startsWith('--format=')) format = a.slice('--format='.length);
    else names.push(a);
  }
  if (names.length !== 1 || !['json', 'table', 'value'].includes(format)) {
    io.eprint('usage: openstack server show [-h] [-f {json,shell,table,value,yaml}] <server>');
    io.eprint('openstack server show: error: the following arguments are required: <server>');
    return 2;
  }
  const wanted = names[0]!;
  const byId = readServers(dir).filter((s) => s.id === wanted);
  const matches = byId.length ? byId : readServers(dir).filter((s) => s.name === wanted);
  if (matches.length > 1) {
    io.eprint(`More than one server exists with the name '${wanted}'.`);
    return 1;
  }
  const server = matches[0];
  if (!server) {
    io.eprint(`No server with a name or ID of '${wanted}' exists.`);
    return 1;
  }
  const fields = shown(server);
  if (format === 'json') io.print(JSON.stringify(fields, null, 2));
  else if (format === 'value') for (const v of Object.values(fields)) io.print(typeof v === 'string' ? v : JSON.stringify(v));
  else for (const [k, v] of Object.entries(fields)) io.print(`| ${k.padEnd(36)} | ${typeof v === 'string' ? v : JSON.stringify(v)} |`);
  return 0;
}

/** The management verbs: add, status. */
export function novaManage(io: Io, dir: string, args: string[]): number {
  const [verb, ...rest] = args;
  const usage = () => {
    io.eprint('usage: hostsim nova add <uuid> <name> <host> <instance name> <project id> [--status S] | status <uuid> <status>');
    return 2;
  };
  if (verb === 'add') {
    const at = rest.indexOf('--status');
    const status = at >= 0 ? rest[at + 1] : 'ACTIVE';
    const positional = at >= 0 ? rest.slice(0, at) : rest;
    const [id, name, host, instanceName, projectId] = positional;
    if (positional.length !== 5 || !id || !name || !host || !instanceName || !projectId || !status) return usage();
    return withLock(dir, () => {
      const servers = readServers(dir).filter((s) => s.id !== id);
      servers.push({ id, name, host, instanceName, projectId, status, created: new Date().toISOString().replace(/\.\d+Z$/, 'Z') });
      mkdirSync(join(dir, 'openstack'), { recursive: true });
      writeFileAtomic(serversFile(dir), JSON.stringify(servers, null, 2));
      return 0;
    });
  }
  if (verb === 'status') {
    const [id, status] = rest;
    if (rest.length !== 2 || !id || !status) return usage();
    return withLock(dir, () => {
      const servers = readServers(dir);
      if (!servers.some((s) => s.id === id)) {
        io.eprint(`hostsim: no server ${id}`);
        return 1;
      }
      writeFileAtomic(serversFile(dir), JSON.stringify(servers.map((s) => (s.id === id ? { ...s, status } : s)), null, 2));
      return 0;
    });
  }
  return usage();
}
