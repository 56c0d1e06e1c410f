import type { Command } from '@commander-js/extra-typings';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ACCESS_KEY_ID, TooManyKeys } from '../db/access-keys.js';
import { DEPLOYMENT_ADMIN, userName } from '../core/validate.js';
import { UserNotFound, UserRegistry } from '../pki/users.js';
import { globalOptions } from './context.js';
import { checkLocally, CliFailure, UsageError } from './errors.js';
import { formatJson, formatTable, formatTime } from './format.js';
import type { CliRuntime } from './runtime.js';
import { deploymentEc2, issueKey, withKeys, writeAwsFiles } from './aws-profile.js';

/**
 * `vbs admin user keys create|list|revoke NAME`: a user's access keys for the
 * EC2 API, on the data folder. `create` prints the secret once (and with
 * --out writes the AWS CLI's credentials and config there); `revoke` takes
 * effect on the running front at its next request (the key is read from the
 * database on each one).
 */
export function registerKeyCommands(user: Command, runtime: CliRuntime): void {
  const keys = user.command('keys').description("a user's access keys for the EC2 API (aws ec2 ..., boto3)");
  const DATA = ['--data <dir>', "the deployment's data folder (as `vbs up --data`)", './vbs-data'] as const;

  keys
    .command('create')
    .description('issue an access key pair; the secret is shown once (with --out: written to OUT/credentials, 0600, beside OUT/config)')
    .argument('<name>')
    .option(...DATA)
    .option('--out <dir>', 'write the AWS CLI files credentials and config here')
    .action((name, o, cmd) => {
      const dataDir = resolve(runtime.cwd, o.data);
      const n = checkLocally(() => userName(name, 'name'));
      const admin = adminOf(dataDir, n);
      const d = deploymentEc2(dataDir);
      let issued;
      try {
        issued = issueKey(d, n, admin);
      } catch (err) {
        if (err instanceof TooManyKeys) throw new CliFailure(err.message);
        throw err;
      }
      const files = o.out === undefined ? undefined : writeAwsFiles(resolve(runtime.cwd, o.out), d, issued.row.access_key_id, issued.secret, caFor(dataDir, resolve(runtime.cwd, o.out)));
      if (globalOptions(cmd).json) {
        runtime.stdout.write(formatJson({ user: n, accessKeyId: issued.row.access_key_id, secretAccessKey: issued.secret, ...(files ?? {}) }));
        return;
      }
      runtime.stdout.write(
        [
          `Access key for ${n}: ${issued.row.access_key_id}`,
          `Secret access key (shown once): ${issued.secret}`,
          ...(files ? [`AWS CLI files: ${files.credentials} (0600), ${files.config}`, `  export AWS_SHARED_CREDENTIALS_FILE=${files.credentials} AWS_CONFIG_FILE=${files.config}`] : []),
          `Endpoint: ${d.endpoint}`,
          '',
        ].join('\n'),
      );
    });

  keys
    .command('list')
    .description("a user's access keys (never their secrets)")
    .argument('<name>')
    .option(...DATA)
    .action((name, o, cmd) => {
      const n = checkLocally(() => userName(name, 'name'));
      const rows = withKeys(deploymentEc2(resolve(runtime.cwd, o.data)), (k) => k.list(n));
      const view = rows.map((r) => ({ accessKeyId: r.access_key_id, user: r.user, status: r.revoked_at ? 'revoked' : 'active', createdAt: r.created_at, ...(r.revoked_at ? { revokedAt: r.revoked_at } : {}) }));
      if (globalOptions(cmd).json) return void runtime.stdout.write(formatJson(view));
      if (!rows.length) return void runtime.stdout.write(`${n} has no access keys; \`vbs admin user keys create ${n}\` issues one.\n`);
      runtime.stdout.write(formatTable(['ACCESS KEY', 'STATUS', 'CREATED', 'REVOKED'], view.map((r) => [r.accessKeyId, r.status, formatTime(r.createdAt), r.revokedAt ? formatTime(r.revokedAt) : '-'])));
    });

  keys
    .command('revoke')
    .description('revoke one access key of the user; the running front refuses it from the next request')
    .argument('<name>')
    .argument('<accessKeyId>')
    .option(...DATA)
    .action((name, id, o) => {
      const n = checkLocally(() => userName(name, 'name'));
      if (!ACCESS_KEY_ID.test(id)) throw new UsageError('expected an access key id such as AKIA followed by 16 letters and digits');
      const done = withKeys(deploymentEc2(resolve(runtime.cwd, o.data)), (k) => k.revoke(n, id));
      if (!done) throw new CliFailure(`${n} has no access key ${id} in force`);
      runtime.stdout.write(`Access key ${id} of ${n} revoked.\n`);
    });
}

/** Whether keys for this name act as an administrator: the deployment's admin, or a user registered as one. */
function adminOf(dataDir: string, name: string): boolean {
  if (name === DEPLOYMENT_ADMIN) return true;
  try {
    return new UserRegistry(dataDir).get(name).admin;
  } catch (err) {
    if (err instanceof UserNotFound) throw new CliFailure(`no user ${name} on ${dataDir}; \`vbs admin user add ${name}\` registers one`);
    throw err;
  }
}

/** The CA certificate the AWS config names: OUT/ca.crt when a user's folder has it, else the deployment's. */
function caFor(dataDir: string, outDir: string): string {
  const inOut = join(outDir, 'ca.crt');
  return existsSync(inOut) ? inOut : join(dataDir, 'pki', 'ca.crt');
}
