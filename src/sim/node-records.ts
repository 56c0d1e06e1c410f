/**
 * The simulated host's open-iscsi node records on disk, in iscsiadm's own
 * layout and format (src/iscsi/node-record.ts), under `<state>/iscsi/nodes`
 * where a real host has /etc/iscsi/nodes: discovery and `-o new` write one,
 * `-o delete` removes it, `-o update` changes a setting, and a login reads
 * its CHAP account (node.session.auth.*) from it. So the tools that edit a
 * real host's records (vbs-iscsi-node-auth) work on the simulator's unchanged.
 * The state file keeps which records exist; these files keep their settings.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { nodeAuthOf, parseRecord, recordFiles, replaceRecord } from '../iscsi/node-record.js';
import type { ChapAccount } from './libiscsi.js';
import { splitPortal } from './devices.js';

export function simNodesDir(stateDir: string): string {
  return join(stateDir, 'iscsi', 'nodes');
}

interface RecordName {
  iqn: string;
  portal: string;
  tpgt: number;
}

function portalDir(stateDir: string, r: RecordName): string {
  const [ip, port] = splitPortal(r.portal);
  return join(simNodesDir(stateDir), r.iqn, `${ip},${port},${r.tpgt}`);
}

/** A fresh record, as discovery writes it (iscsid.conf's defaults: no authentication). */
export function writeNewRecord(stateDir: string, r: RecordName): void {
  const [ip, port] = splitPortal(r.portal);
  const dir = portalDir(stateDir, r);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  replaceRecord(
    join(dir, 'default'),
    [
      '# BEGIN RECORD 2.1.8',
      `node.name = ${r.iqn}`,
      `node.tpgt = ${r.tpgt}`,
      'node.startup = manual',
      'iface.iscsi_ifacename = default',
      'iface.transport_name = tcp',
      'node.session.auth.authmethod = None',
      `node.conn[0].address = ${ip}`,
      `node.conn[0].port = ${port}`,
      '# END RECORD',
      '',
    ].join('\n'),
  );
}

export function removeRecord(stateDir: string, r: RecordName): void {
  rmSync(portalDir(stateDir, r), { recursive: true, force: true });
  const targetDir = join(simNodesDir(stateDir), r.iqn);
  if (existsSync(targetDir) && readdirSync(targetDir).length === 0) rmSync(targetDir, { recursive: true, force: true });
}

/** The CHAP account the record of a target at a portal holds, if any (what iscsiadm's login sends). */
export function recordAccount(stateDir: string, r: { iqn: string; portal: string }): ChapAccount | undefined {
  for (const file of recordFiles(simNodesDir(stateDir), r.iqn, r.portal)) {
    const auth = nodeAuthOf(readFileSync(file, 'utf8'));
    if (auth) return auth;
  }
  return undefined;
}

/** `-o update -n <name> -v <value>` on every matching record (the setting replaced or added before `# END RECORD`). */
export function updateRecords(stateDir: string, r: { iqn: string; portal: string }, name: string, value: string): number {
  const files = recordFiles(simNodesDir(stateDir), r.iqn, r.portal);
  for (const file of files) {
    const lines = readFileSync(file, 'utf8').split('\n');
    const at = lines.findIndex((line) => /^\s*([^#=\s][^=]*?)\s*=/.exec(line)?.[1] === name);
    if (at >= 0) lines[at] = `${name} = ${value}`;
    else {
      const end = lines.findIndex((line) => line.trim() === '# END RECORD');
      lines.splice(end < 0 ? lines.length : end, 0, `${name} = ${value}`);
    }
    replaceRecord(file, lines.join('\n'));
  }
  return files.length;
}

/** A record's settings as `-o show` prints them, secrets masked as iscsiadm masks them. */
export function shownRecord(stateDir: string, r: { iqn: string; portal: string }): string | undefined {
  const file = recordFiles(simNodesDir(stateDir), r.iqn, r.portal)[0];
  if (!file) return undefined;
  const out: string[] = ['# BEGIN RECORD 2.1.8'];
  for (const [name, value] of parseRecord(readFileSync(file, 'utf8'))) {
    if (name.endsWith('password_length')) continue;
    out.push(`${name} = ${name.endsWith('.password') && value !== '' ? '********' : value}`);
  }
  out.push('# END RECORD');
  return out.join('\n');
}
