import { closeSync, fsyncSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/**
 * open-iscsi's node records, as iscsiadm keeps them on disk: one folder per
 * target under the nodes folder (/etc/iscsi/nodes), one per portal and
 * target portal group in it (`<ip>,<port>,<tpgt>`), and in that one file per
 * interface (`default`, ...) of `name = value` lines between `# BEGIN RECORD`
 * and `# END RECORD`. Records made by versions before 2.0-865 are a file at
 * the portal's place instead of a folder; both are read and written.
 *
 * `iscsiadm --login` reads the record and hands its settings (the CHAP
 * account among them) to iscsid. `iscsiadm -o update -n ... -v <value>` is
 * the tool's only way to change one and takes the value on its command line,
 * which every local user can read (ps, /proc/<pid>/cmdline): VBS writes the
 * CHAP lines of the record itself instead (node-auth-tool.ts), with the
 * secret read from standard input.
 */

export const DEFAULT_NODES_DIR = '/etc/iscsi/nodes';

/** The three settings a CHAP login takes from the record (idbm.c: node.session.auth.*). */
export const AUTH_KEYS = ['node.session.auth.authmethod', 'node.session.auth.username', 'node.session.auth.password', 'node.session.auth.password_length'] as const;

/** replaceRecord's temporary files (a crash may leave one): never a record. */
const TEMP = /\.vbs-[0-9]+\.tmp$/;

export interface NodeAuth {
  readonly user: string;
  readonly secret: string;
}

/** `a.b.c.d:port` → the portal's folder name without its tpgt (`a.b.c.d,port,`). */
function portalPrefix(portal: string): string {
  const i = portal.lastIndexOf(':');
  return `${portal.slice(0, i)},${portal.slice(i + 1)},`;
}

/**
 * The record files of a target at a portal (each interface's; any tpgt), as
 * `iscsiadm -m node -T <iqn> -p <portal>` matches them. Empty: no record
 * (iscsiadm's "No records found").
 */
export function recordFiles(nodesDir: string, iqn: string, portal: string): string[] {
  const targetDir = join(nodesDir, iqn);
  let entries: string[];
  try {
    entries = readdirSync(targetDir);
  } catch {
    return [];
  }
  const files: string[] = [];
  for (const entry of entries.filter((e) => e.startsWith(portalPrefix(portal)) && /^-?[0-9]+$/.test(e.slice(portalPrefix(portal).length))).sort()) {
    const at = join(targetDir, entry);
    if (statSync(at).isDirectory()) {
      for (const iface of readdirSync(at).sort()) if (!TEMP.test(iface) && statSync(join(at, iface)).isFile()) files.push(join(at, iface));
    } else {
      files.push(at); // the old layout: the portal's entry is the record itself
    }
  }
  return files;
}

/** The `name = value` settings of a record (comments and blank lines skipped; the last of a name wins, as idbm reads it). */
export function parseRecord(text: string): Map<string, string> {
  const settings = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\s*([^#=\s][^=]*?)\s*=\s*(.*?)\s*$/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) settings.set(m[1], m[2]);
  }
  return settings;
}

/**
 * The record with its CHAP lines replaced: `auth` sets authmethod CHAP, the
 * user and the secret (and its length, which idbm keeps beside it);
 * undefined takes them out (authmethod None). Every other line is kept as it
 * was, and the new lines go before `# END RECORD`, where iscsiadm writes them.
 */
export function withAuth(text: string, auth: NodeAuth | undefined): string {
  const lines = text.split('\n').filter((line) => {
    const name = /^\s*([^#=\s][^=]*?)\s*=/.exec(line)?.[1];
    return name === undefined || !(AUTH_KEYS as readonly string[]).includes(name);
  });
  while (lines.length && lines[lines.length - 1] === '') lines.pop();
  const added = auth
    ? [`node.session.auth.authmethod = CHAP`, `node.session.auth.username = ${auth.user}`, `node.session.auth.password = ${auth.secret}`, `node.session.auth.password_length = ${auth.secret.length}`]
    : [`node.session.auth.authmethod = None`];
  const end = lines.findIndex((line) => line.trim() === '# END RECORD');
  if (end < 0) lines.push(...added);
  else lines.splice(end, 0, ...added);
  return `${lines.join('\n')}\n`;
}

/**
 * Replaces a record file whole: a private temporary file beside it (0600:
 * it holds a secret), flushed, then renamed over it, so iscsiadm never reads
 * half a record and a crash leaves the old one or the new one.
 */
export function replaceRecord(file: string, text: string): void {
  const tmp = `${file}.vbs-${process.pid}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** Sets (or, with undefined, clears) the CHAP account of every record of the target at the portal; returns how many. */
export function setNodeAuth(nodesDir: string, iqn: string, portal: string, auth: NodeAuth | undefined): number {
  const files = recordFiles(nodesDir, iqn, portal);
  for (const file of files) replaceRecord(file, withAuth(readFileSync(file, 'utf8'), auth));
  return files.length;
}

/** The CHAP account a record holds, or undefined when its authmethod is not CHAP. */
export function nodeAuthOf(text: string): NodeAuth | undefined {
  const s = parseRecord(text);
  if (s.get('node.session.auth.authmethod') !== 'CHAP') return undefined;
  const user = s.get('node.session.auth.username');
  const secret = s.get('node.session.auth.password');
  return user && secret ? { user, secret } : undefined;
}
