import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'vitest';
import { startVbs, type Vbs } from '../harness.js';

const run = promisify(execFile);

/** A user of the EC2 tests: their access key and the AWS CLI files `vbs admin user add` wrote. */
export interface Ec2User {
  readonly name: string;
  readonly accessKeyId: string;
  readonly secret: string;
  readonly dir: string;
}

export interface Ec2Deployment {
  readonly vbs: Vbs;
  /** https://127.0.0.1:PORT/ */
  readonly endpoint: string;
  readonly ca: string;
  user(name: string): Promise<Ec2User>;
}

/**
 * `vbs up` with its EC2 listener on a free port. The machines here set
 * AWS_CA_BUNDLE and REQUESTS_CA_BUNDLE, which would override the CA bundle
 * of the profile `vbs admin user add` writes: the AWS CLI and boto3 run
 * without them (awsEnv).
 */
export async function startEc2Deployment(): Promise<Ec2Deployment> {
  const vbs = await startVbs(['--ec2-port', '0']);
  const front = JSON.parse(readFileSync(join(vbs.dir, 'front.json'), 'utf8')) as { ec2: { listen: { port: number } } };
  const endpoint = `https://127.0.0.1:${front.ec2.listen.port}/`;
  return {
    vbs,
    endpoint,
    ca: join(vbs.dir, 'pki', 'ca.crt'),
    async user(name) {
      const dir = join(vbs.dir, 'users', name);
      const r = await vbs.cli('admin', 'user', 'add', name, '--data', vbs.dir, '--out', dir);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const creds = readFileSync(join(dir, 'credentials'), 'utf8');
      return {
        name,
        dir,
        accessKeyId: /aws_access_key_id = (\S+)/.exec(creds)![1]!,
        secret: /aws_secret_access_key = (\S+)/.exec(creds)![1]!,
      };
    },
  };
}

/** The environment for the AWS CLI and boto3: the user's profile files, and no CA bundle from this machine's environment. */
export function awsEnv(user: Ec2User): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, AWS_SHARED_CREDENTIALS_FILE: join(user.dir, 'credentials'), AWS_CONFIG_FILE: join(user.dir, 'config'), AWS_PAGER: '' };
  for (const k of ['AWS_CA_BUNDLE', 'REQUESTS_CA_BUNDLE', 'AWS_PROFILE', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_DEFAULT_REGION', 'AWS_REGION']) delete env[k];
  return env;
}

/** Runs the real AWS CLI v2 (/usr/bin/aws) as the user; never throws. */
export async function aws(d: Ec2Deployment, user: Ec2User, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run('/usr/bin/aws', ['--endpoint-url', d.endpoint, ...args], { env: awsEnv(user), timeout: 120_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}
