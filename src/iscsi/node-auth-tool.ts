#!/usr/bin/env node
import { isAbsolute } from 'node:path';
import { DEFAULT_NODES_DIR, setNodeAuth } from './node-record.js';
import { readSecretFromStdin } from '../core/secret-stdin.js';

/**
 * vbs-iscsi-node-auth: puts a target's CHAP account into open-iscsi's node
 * record (node.session.auth.authmethod, username, password), with the secret
 * read from standard input, because `iscsiadm -o update -n
 * node.session.auth.password -v <secret>` takes it only on the command line,
 * where every local user reads it (ps). Run from commands.properties after
 * discovery (which makes the record) and before the login (which reads it):
 *
 *   <node> <vbsHome>/dist/iscsi/node-auth-tool.js set -T <iqn> -p <portal> --user <chapUser> --password-stdin
 *
 * with `<key>.stdin = <chapSecret>`. `clear -T <iqn> -p <portal>` sets the
 * record back to no authentication. `--nodes <dir>` (first) names another
 * nodes folder than /etc/iscsi/nodes (the simulator's). Exit codes as
 * iscsiadm's: 0 done, 21 no record of that target at that portal (discover
 * first), 7 usage or a value refused (the value never repeated), 1 the record
 * could not be written.
 */
const IQN = /^iqn\.[0-9]{4}-[0-9]{2}\.[a-z0-9.-]+(?::[A-Za-z0-9.:_-]+)?$/;
const OCTET = '(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])';
const PORTAL = new RegExp(`^(${OCTET}(?:\\.${OCTET}){3})(?::([0-9]{1,5}))?$`);
const USER = /^[A-Za-z0-9][A-Za-z0-9.:_-]{0,222}$/;
// What the front generates (src/core/chap.ts); nothing in it can break a record's line.
const SECRET = /^[A-Za-z0-9_-]{12,128}$/;

const ISCSI_ERR = 1;
const ISCSI_ERR_INVAL = 7;
const ISCSI_ERR_NO_OBJS_FOUND = 21;

const USAGE = 'usage: vbs-iscsi-node-auth [--nodes <dir>] set -T <iqn> -p <ip[:port]> --user <name> --password-stdin\n       vbs-iscsi-node-auth [--nodes <dir>] clear -T <iqn> -p <ip[:port]>\n';

interface Request {
  nodesDir: string;
  op: 'set' | 'clear';
  iqn: string;
  portal: string;
  user?: string;
}

function parse(argv: string[]): Request | string {
  const args = [...argv];
  let nodesDir = DEFAULT_NODES_DIR;
  if (args[0] === '--nodes') {
    const dir = args[1];
    if (!dir || !isAbsolute(dir) || dir.split('/').includes('..')) return '--nodes takes an absolute folder';
    nodesDir = dir;
    args.splice(0, 2);
  }
  const [op, t, iqn, p, portal, ...rest] = args;
  if ((op !== 'set' && op !== 'clear') || t !== '-T' || p !== '-p') return 'unrecognized arguments';
  if (!IQN.test(iqn ?? '') || (iqn ?? '').length > 223) return 'the target name is not an iqn';
  const m = PORTAL.exec(portal ?? '');
  const port = m?.[2] === undefined ? 3260 : Number(m[2]);
  if (!m || port < 1 || port > 65535) return 'the portal is not <IPv4 address>[:<port>]';
  const request: Request = { nodesDir, op, iqn: iqn!, portal: `${m[1]}:${port}` };
  if (op === 'clear') return rest.length ? 'unrecognized arguments' : request;
  const [u, user, flag, ...more] = rest;
  if (u !== '--user' || flag !== '--password-stdin' || more.length) return 'set takes --user <name> --password-stdin';
  if (!USER.test(user ?? '')) return 'the user is not a CHAP account name';
  return { ...request, user: user! };
}

async function main(argv: string[]): Promise<number> {
  const request = parse(argv);
  if (typeof request === 'string') {
    process.stderr.write(`vbs-iscsi-node-auth: ${request}\n${USAGE}`);
    return ISCSI_ERR_INVAL;
  }
  let auth: { user: string; secret: string } | undefined;
  if (request.op === 'set') {
    const secret = await readSecretFromStdin();
    if (!SECRET.test(secret)) {
      process.stderr.write('vbs-iscsi-node-auth: the secret on standard input is not 12 to 128 of A-Z a-z 0-9 _ -\n');
      return ISCSI_ERR_INVAL;
    }
    auth = { user: request.user!, secret };
  }
  let updated: number;
  try {
    updated = setNodeAuth(request.nodesDir, request.iqn, request.portal, auth);
  } catch (err) {
    // A file system error names a path, never the secret.
    process.stderr.write(`vbs-iscsi-node-auth: could not write the node record: ${(err as NodeJS.ErrnoException).code ?? 'error'}\n`);
    return ISCSI_ERR;
  }
  if (updated === 0) {
    process.stderr.write(`vbs-iscsi-node-auth: No records found for ${request.iqn} at ${request.portal} (discover it first)\n`);
    return ISCSI_ERR_NO_OBJS_FOUND;
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`vbs-iscsi-node-auth: ${(err as Error).message}\n`);
    process.exit(ISCSI_ERR);
  },
);
