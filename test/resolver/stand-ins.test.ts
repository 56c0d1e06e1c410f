import Database from 'better-sqlite3';
import { rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sim } from '../sim/helpers.js';
import { ALICE_DN, cloudSite, must } from './helpers.js';

/** The Nimbus and OpenStack stand-ins print what the real tools print. */
describe('host simulator: nimbus-admin and elastic.db', () => {
  let dir: string;
  beforeEach(() => {
    dir = cloudSite();
    must(dir, 'nimbus', 'launch', 'i-0a1b2c3d', '7', 'node2', ALICE_DN);
    must(dir, 'nimbus', 'launch', 'i-00000042', '8', 'node1', '/O=Grid/CN=bob', '--state', 'Paused');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps the i- id → workspace id mapping in a real SQLite elastic.db, in Nimbus\'s table', () => {
    const db = new Database(must(dir, 'nimbus', 'path').trim(), { readonly: true });
    try {
      const cols = (db.prepare('PRAGMA table_info(instances)').all() as { name: string }[]).map((c) => c.name);
      expect(cols).toEqual(['elastic_id', 'manager_id', 'reservation_id', 'sshkey']);
      expect(db.prepare('select manager_id from instances where elastic_id = ?').get('i-0a1b2c3d')).toEqual({ manager_id: '7' });
    } finally {
      db.close();
    }
  });

  it('--list --json: Gson\'s pretty list, every field as a string or null', () => {
    const r = sim(dir, ['nimbus-admin', '--list', '--json']);
    expect(r.code).toBe(0);
    const vms = JSON.parse(r.stdout) as Record<string, unknown>[];
    expect(Object.keys(vms[0]!)).toEqual(['id', 'node', 'group_id', 'group_name', 'creator', 'state', 'start time', 'end time', 'memory', 'cpu count', 'uri']);
    expect(vms.map((v) => [v.id, v.node, v.creator, v.state, v.group_id])).toEqual([
      ['7', 'node2', ALICE_DN, 'Running', null],
      ['8', 'node1', '/O=Grid/CN=bob', 'Paused', null],
    ]);
    expect(r.stdout.startsWith('[\n  {\n    "id": "7",')).toBe(true);
  });

  it('--list: `key :  value` lines, nulls left out, a blank line after each VM; filters', () => {
    const r = sim(dir, ['nimbus-admin', '--list', '--host', 'node2']);
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('id         :  7');
    expect(lines[1]).toBe('node       :  node2');
    expect(lines[2]).toBe(`creator    :  ${ALICE_DN}`);
    expect(r.stdout).not.toContain('group_id');
    expect(r.stdout.endsWith('\n\n')).toBe(true);
    expect(sim(dir, ['nimbus-admin', '--list', '--state', 'Paused', '--batch', '-D', ',']).stdout.split(',').slice(0, 6)).toEqual(['8', 'node1', '', '', '/O=Grid/CN=bob', 'Paused']);
  });

  it('refuses what nimbus-admin refuses, as it does', () => {
    const none = sim(dir, ['nimbus-admin']);
    expect(none.code).toBe(1);
    expect(none.stderr).toBe('Parameter Problem:\n\nYou must specify an action\nSee --help\n');
    expect(sim(dir, ['nimbus-admin', '--list', '--json', '--batch']).stderr).toContain('You cannot specify both --batch and --json');
  });

  it('fails on demand (fail/nimbus-admin.list)', () => {
    mkdirSync(join(dir, 'fail'), { recursive: true });
    writeFileSync(join(dir, 'fail', 'nimbus-admin.list'), 'Problem contacting the service: Connection refused\n');
    const r = sim(dir, ['nimbus-admin', '--list', '--json']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Connection refused');
  });
});

describe('host simulator: openstack server show', () => {
  const UUID = '6f1c0e2a-1b2c-4d3e-8f90-a1b2c3d4e5f6';
  let dir: string;
  beforeEach(() => {
    dir = cloudSite();
    must(dir, 'nova', 'add', UUID, 'web1', 'compute1', 'instance-0000000a', 'proj-a');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('-f json: the admin view of a server, by ID or by name', () => {
    for (const which of [UUID, 'web1']) {
      const r = sim(dir, ['openstack', 'server', 'show', which, '-f', 'json']);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({
        id: UUID,
        name: 'web1',
        status: 'ACTIVE',
        project_id: 'proj-a',
        'OS-EXT-SRV-ATTR:host': 'compute1',
        'OS-EXT-SRV-ATTR:instance_name': 'instance-0000000a',
        'OS-EXT-STS:vm_state': 'active',
      });
    }
  });

  it('an unknown server: the client\'s message, exit 1', () => {
    const r = sim(dir, ['openstack', 'server', 'show', 'nope', '-f', 'json']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("No server with a name or ID of 'nope' exists.\n");
  });

  it('status changes show', () => {
    must(dir, 'nova', 'status', UUID, 'SHUTOFF');
    expect(JSON.parse(sim(dir, ['openstack', 'server', 'show', UUID, '-f', 'json']).stdout)).toMatchObject({ status: 'SHUTOFF', 'OS-EXT-STS:vm_state': 'shutoff' });
  });
});
