import { isPostgresUrl } from '../db/postgres.js';
import type { Command } from '@commander-js/extra-typings';
import { InvalidArgumentError } from '@commander-js/extra-typings';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { registrableUserName } from '../core/validate.js';
import { BadCertificateRequest } from '../pki/certificates.js';
import { VBS_SERVICE } from '../services/vbs.js';
import { currentCertificate, DEFAULT_USER_DAYS, MAX_USER_DAYS, UserExists, UserNotFound, UserRegistry, userStatus, type IssueOptions, type Issued, type UserRecord } from '../pki/users.js';
import { globalOptions } from './context.js';
import { checkLocally, CliFailure, UsageError } from './errors.js';
import { formatJson, formatTable, formatTime } from './format.js';
import type { CliRuntime } from './runtime.js';
import { existingUserFiles, readPassword, writeUserFiles, type UserFiles } from './user-files.js';
import { registerKeyCommands } from './admin-keys.js';
import { deploymentEc2, issueKey, withKeys, writeAwsFiles, type AwsFiles } from './aws-profile.js';

/**
 * `vbs admin user ...`: the deployment's users, managed offline on its data
 * folder (where the CA key stays): no running front is needed, and running
 * services pick up a revocation from DIR/pki/ca.crl by themselves.
 */
export function registerUserCommands(admin: Command, runtime: CliRuntime): void {
  const user = admin.command('user').description("the deployment's users and their certificates (run on the data folder, where the CA key is)");
  const DATA = ['--data <dir>', "the deployment's data folder (as `vbs up --data`)", './vbs-data'] as const;
  /** add and renew: the same options, the same hand-over; `issue` is the registry call. */
  const issuing = (verb: 'add' | 'renew', description: string) =>
    user
      .command(verb)
      .description(description)
      .argument('<name>', 'the user id (the certificate subject CN)')
      .option(...DATA)
      .requiredOption('--out <dir>', "the folder to write the user's files to")
      .option('--csr <file>', "sign the user's own certificate request (PEM, RSA); no key is made or written")
      .option('--days <n>', `validity in days (default ${DEFAULT_USER_DAYS})`, parseDays, DEFAULT_USER_DAYS)
      .option('--p12-password-file <file>', "the PKCS#12 bundle's password (default: a generated one, written to OUT/<name>.p12.password, mode 0600)")
      .option('--url <url>', "the front's URL for the user's client.json (default: DATA/client.json's)");
  const handOver = async (name: string, o: IssuingOptions, done: string, issue: (registry: UserRegistry, n: string, opts: IssueOptions) => Promise<Issued>) => {
    const n = checkLocally(() => registrableUserName(name));
    const out = resolve(runtime.cwd, o.out);
    // A new user's folder must not hold someone's files already; a renewal replaces the user's own.
    const clobbered = done === 'added' ? existingUserFiles(out, n) : [];
    if (clobbered.length) throw new UsageError(`${clobbered.join(', ')} already exist${clobbered.length === 1 ? 's' : ''}; choose another --out folder`);
    const ctx = prepare(runtime, o);
    let files: UserFiles | undefined;
    const deliver = (i: Issued) => void (files = writeUserFiles(out, i, ctx.url, ctx.p12PasswordFile));
    const issued = await registryCall(() => issue(ctx.registry, n, { days: o.days, csrPem: ctx.csrPem, deliver }));
    // A new user gets an access key for the EC2 API too, and the AWS CLI's files beside client.json.
    let aws: { files: AwsFiles; accessKeyId: string } | undefined;
    if (done === 'added' && o.accessKey !== false) {
      const d = deploymentEc2(resolve(runtime.cwd, o.data));
      const key = issueKey(d, n, issued.user.admin);
      aws = { files: writeAwsFiles(out, d, key.row.access_key_id, key.secret, files!.ca), accessKeyId: key.row.access_key_id };
    }
    report(runtime, done, issued, files!, out, aws);
  };

  issuing('add', 'register a user and issue their certificate (and an access key for the EC2 API)')
    .option('--no-access-key', 'issue no access key (no AWS CLI credentials and config)')
    .option('--admin', "a VBS administrator (sees and acts on every owner's resources)")
    .action((name, o) => handOver(name, o, 'added', (registry, n, opts) => registry.add(n, o.admin === true, opts)));

  issuing('renew', 'issue a new certificate under the same name; the previous one is revoked').action((name, o) =>
    handOver(name, o, 'renewed', (registry, n, opts) => registry.renew(n, opts)),
  );

  /** revoke and show: one named user of the data folder; `act` returns what to print. */
  const perUser = (verb: string, description: string, act: (registry: UserRegistry, name: string, json: boolean, dataDir: string) => Promise<string>) =>
    user
      .command(verb)
      .description(description)
      .argument('<name>')
      .option(...DATA)
      .action(async (name, o, cmd) => {
        const n = checkLocally(() => registrableUserName(name));
        const dataDir = resolve(runtime.cwd, o.data);
        const registry = new UserRegistry(dataDir);
        runtime.stdout.write(await registryCall(() => act(registry, n, globalOptions(cmd).json, dataDir)));
      });

  perUser('revoke', 'revoke every certificate of a user; running services refuse them within a second or two', async (registry, n, json, dataDir) => {
    const u = await registry.revoke(n);
    // Their access keys too: the front reads each key on every EC2 request, so this applies at once.
    const d = deploymentEc2(dataDir);
    const keys = isPostgresUrl(d.database) || existsSync(d.database) ? withKeys(d, (k) => k.revokeUser(n)) : 0;
    if (json) return formatJson({ ...userView(u), accessKeysRevoked: keys });
    return `User ${u.name} revoked: ${u.certificates.length} certificate${u.certificates.length === 1 ? '' : 's'} listed in ${registry.crlFile}${keys ? `, ${keys} access key${keys === 1 ? '' : 's'} revoked` : ''}.\n`;
  });

  perUser('show', "a user's certificates, newest last", async (registry, n, json) => {
    const u = registry.get(n);
    return json ? formatJson(userView(u)) : userDetail(u);
  });

  user
    .command('list')
    .description('the registered users')
    .option(...DATA)
    .action((o, cmd) => {
      const users = new UserRegistry(resolve(runtime.cwd, o.data)).list();
      runtime.stdout.write(globalOptions(cmd).json ? formatJson(users.map((u) => userView(u))) : usersTable(users));
    });

  registerKeyCommands(user, runtime);
}

interface IssuingOptions {
  readonly data: string;
  readonly out: string;
  readonly csr?: string;
  readonly days: number;
  readonly p12PasswordFile?: string;
  readonly url?: string;
  readonly accessKey?: boolean;
}

function parseDays(value: string): number {
  const n = Number(value);
  if (!/^[0-9]{1,5}$/.test(value) || n < 1 || n > MAX_USER_DAYS) throw new InvalidArgumentError(`expected a whole number of days from 1 to ${MAX_USER_DAYS}.`);
  return n;
}

/** Everything read from the command line's files, before anything is issued. */
function prepare(runtime: CliRuntime, o: IssuingOptions) {
  const dataDir = resolve(runtime.cwd, o.data);
  if (!existsSync(join(dataDir, 'pki', 'ca.crt')) || !existsSync(join(dataDir, 'pki', 'ca.key'))) {
    throw new UsageError(`${dataDir} holds no VBS CA (pki/ca.crt, pki/ca.key); run \`vbs up --data ${o.data}\` once, or name the data folder with --data`);
  }
  const csrPem = o.csr === undefined ? undefined : readOrFail(resolve(runtime.cwd, o.csr), '--csr');
  const p12PasswordFile = o.p12PasswordFile === undefined ? undefined : resolve(runtime.cwd, o.p12PasswordFile);
  if (p12PasswordFile) {
    if (csrPem !== undefined) throw new UsageError('--p12-password-file goes without --csr (no key, no PKCS#12 bundle)');
    try {
      readPassword(p12PasswordFile);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  return { registry: new UserRegistry(dataDir), csrPem, p12PasswordFile, url: o.url === undefined ? frontUrlsOf(dataDir) : [o.url] };
}

function readOrFail(file: string, option: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`${option}: cannot read ${file}: ${(err as Error).message}`);
  }
}

/** The fronts' URLs as `vbs up` wrote them for its admin (several with --fronts N); --url for any other address. */
function frontUrlsOf(dataDir: string): string[] {
  try {
    const c = JSON.parse(readFileSync(join(dataDir, 'client.json'), 'utf8')) as { url?: unknown; fronts?: unknown };
    const urls = [c.url, c.fronts].flat().filter((u): u is string => typeof u === 'string');
    if (urls.length) return [...new Set(urls)];
  } catch {
    // No deployment started on this folder yet.
  }
  throw new UsageError(`${join(dataDir, 'client.json')} does not name the front's URL (has \`vbs up\` run on this folder?); give it with --url https://HOST:PORT${VBS_SERVICE.path}`);
}

/** The registry's refusals as the CLI reports them; anything else is unexpected. */
async function registryCall<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof UserExists || err instanceof UserNotFound) throw new CliFailure(err.message);
    if (err instanceof BadCertificateRequest) throw new UsageError(`--csr: ${err.message}`);
    throw err;
  }
}

function report(runtime: CliRuntime, what: string, issued: Issued, files: UserFiles, out: string, aws?: { files: AwsFiles; accessKeyId: string }): void {
  const u = issued.user;
  const cert = currentCertificate(u)!;
  const lines = [
    `User ${u.name} ${what}${u.admin ? ' (administrator)' : ''}: certificate ${cert.serial}, valid until ${formatTime(cert.notAfter)}.`,
    `Files for ${u.name} in ${out}:`,
    issued.keyPem ? `  ${rel(files.key, out)}  private key (mode 0600): give it to ${u.name} only` : `  ${rel(files.key, out)}  not written: ${u.name} keeps their own key; put it here for client.json`,
    `  ${rel(files.cert, out)}  certificate`,
    `  ${rel(files.ca, out)}  the VBS CA certificate (to trust the front)`,
    ...(issued.keyPem ? [`  ${rel(files.p12, out)}  PKCS#12 bundle of the three (mode 0600)${existsSync(files.p12Password) ? `, its password in ${rel(files.p12Password, out)} (mode 0600)` : ''}`] : []),
    `  client.json  CLI configuration: VBS_CONFIG=${files.clientConfig} vbs describe-volumes`,
    ...(aws
      ? [
          `  credentials  AWS CLI credentials, access key ${aws.accessKeyId} (mode 0600)`,
          `  config       AWS CLI configuration (region, CA bundle, endpoint):`,
          `               AWS_SHARED_CREDENTIALS_FILE=${aws.files.credentials} AWS_CONFIG_FILE=${aws.files.config} aws ec2 describe-volumes --endpoint-url ...`,
        ]
      : []),
    '',
  ];
  runtime.stdout.write(lines.join('\n'));
}

function rel(file: string, dir: string): string {
  return file.startsWith(`${dir}/`) ? file.slice(dir.length + 1) : file;
}

export const USER_HEADERS = ['NAME', 'ADMIN', 'STATUS', 'SERIAL', 'EXPIRES', 'CERTIFICATES'] as const;

export function usersTable(users: readonly UserRecord[], now = new Date()): string {
  if (!users.length) return 'No users yet; `vbs admin user add NAME --out DIR` adds one.\n';
  return formatTable(
    USER_HEADERS,
    users.map((u) => {
      const current = currentCertificate(u);
      return [u.name, u.admin ? 'yes' : 'no', userStatus(u, now), current?.serial ?? '-', current ? formatTime(current.notAfter) : '-', String(u.certificates.length)];
    }),
  );
}

export function userDetail(u: UserRecord, now = new Date()): string {
  const head = [`Name:    ${u.name}`, `Admin:   ${u.admin ? 'yes' : 'no'}`, `Status:  ${userStatus(u, now)}`, `Created: ${formatTime(u.createdAt)}`, ''].join('\n');
  const table = formatTable(
    ['SERIAL', 'ISSUED', 'EXPIRES', 'REVOKED'],
    u.certificates.map((c) => [c.serial, formatTime(c.issuedAt), formatTime(c.notAfter), c.revokedAt ? formatTime(c.revokedAt) : '-']),
  );
  return `${head}${table}`;
}

/** The JSON form: everything but the certificates' PEM. */
export function userView(u: UserRecord, now = new Date()) {
  return {
    name: u.name,
    admin: u.admin,
    status: userStatus(u, now),
    createdAt: u.createdAt,
    certificates: u.certificates.map(({ serial, issuedAt, notAfter, revokedAt }) => ({ serial, issuedAt, notAfter, ...(revokedAt ? { revokedAt } : {}) })),
  };
}
