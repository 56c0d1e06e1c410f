#!/usr/bin/env node
import { newAccountRequest, request, TgtdRefused } from './ipc.js';
import { readSecretFromStdin } from '../core/secret-stdin.js';

/**
 * vbs-tgt-account: makes a tgtd CHAP account with its secret read from
 * standard input, because tgtadm (and tgt-admin, which runs tgtadm) only
 * takes it on the command line, where every local user reads it (ps). Run
 * from commands.properties:
 *
 *   <node> <vbsHome>/dist/tgt/account-tool.js -C <controlPort> new --user <chapUser> --password-stdin
 *
 * with `<key>.stdin = <chapSecret>`. Everything else about accounts (bind,
 * delete, show) has no secret and stays with tgtadm. Exit codes as tgtadm's:
 * 0 done, 22 tgtd refused (its reason on stderr, in tgtadm's words), 107 no
 * tgtd on that control port, 2 usage.
 */
const USER = /^[A-Za-z0-9][A-Za-z0-9.:_-]{0,222}$/;
// tgtd splits its parameters at ',' and '=': a secret holding either would be cut.
const SECRET = /^[A-Za-z0-9_-]{12,128}$/;
const TIMEOUT_MS = 30_000;

async function main(argv: string[]): Promise<number> {
  const [c, port, op, u, user, flag, ...rest] = argv;
  if (c !== '-C' || !/^[0-9]{1,5}$/.test(port ?? '') || op !== 'new' || u !== '--user' || !USER.test(user ?? '') || flag !== '--password-stdin' || rest.length) {
    process.stderr.write('usage: vbs-tgt-account -C <controlPort> new --user <name> --password-stdin\n');
    return 2;
  }
  const secret = await readSecretFromStdin();
  if (!SECRET.test(secret)) {
    process.stderr.write('vbs-tgt-account: the secret on standard input is not 12 to 128 of A-Z a-z 0-9 _ -\n');
    return 2;
  }
  try {
    await request(Number(port), newAccountRequest(user!, secret), TIMEOUT_MS);
    return 0;
  } catch (err) {
    if (err instanceof TgtdRefused) {
      process.stderr.write(`vbs-tgt-account: ${err.message}\n`);
      return 22;
    }
    process.stderr.write(`vbs-tgt-account: can't reach tgtd: ${(err as Error).message}\n`);
    return 107;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`vbs-tgt-account: ${(err as Error).message}\n`);
    process.exit(2);
  },
);
