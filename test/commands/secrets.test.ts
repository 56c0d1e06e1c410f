import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CommandCatalog } from '../../src/commands/catalog.js';
import { CommandFailed, CommandRunner } from '../../src/commands/runner.js';
import { VbsError } from '../../src/core/errors.js';
import { DEFAULT_COMMANDS_FILE } from '../../src/core/paths.js';

/**
 * Secrets in command patterns (issue 17 item 8): a secret placeholder is
 * refused in a command's words when commands.properties loads, and reaches
 * the command only by standard input or an environment variable, which the
 * runner fills from checked values. What every spawned argv held is
 * recorded (onRun) and must never contain the secret.
 */
const dir = mkdtempSync(join(tmpdir(), 'vbs-secrets-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Prints what reached it: its arguments, standard input, and one variable.
const ECHO = join(dir, 'echo.mjs');
writeFileSync(
  ECHO,
  `let input = '';
process.stdin.on('data', (d) => (input += d));
process.stdin.on('end', () => {
  process.stdout.write(JSON.stringify({ argv: process.argv.slice(2), input, env: process.env.TOOL_PASSWORD ?? null }));
  process.exit(process.argv[2] === 'fail' ? 3 : 0);
});
`,
);

const SECRET = 'Zq3xX8f0a9sd7fGh2KLmn4';

function runner(lines: string[], seen: string[][]): CommandRunner {
  const catalog = CommandCatalog.fromText(lines.join('\n'));
  return new CommandRunner(catalog, { fixed: { node: process.execPath, source: ECHO }, onRun: (_k, argv) => seen.push([...argv]) });
}

describe('secret placeholders', () => {
  it('are refused in a command word, alone or inside a word, naming how to deliver them instead', () => {
    expect(() => CommandCatalog.fromText('t.a = tool --password <chapSecret>')).toThrow(/puts the secret <chapSecret> on a command line.*t\.a\.stdin/);
    expect(() => CommandCatalog.fromText('t.a = tool --password=<chapSecret>')).toThrow(/secret <chapSecret>/);
    expect(() => CommandCatalog.fromText('t.a = tool user=<chapUser>,password=<chapSecret>')).toThrow(/secret <chapSecret>/);
  });

  it('a delivery names one known placeholder, for a pattern that exists', () => {
    expect(() => CommandCatalog.fromText('t.a = tool\nt.a.stdin = <nosuch>')).toThrow(/must be one known <placeholder>/);
    expect(() => CommandCatalog.fromText('t.a = tool\nt.a.stdin = x<chapSecret>')).toThrow(/must be one known <placeholder>/);
    expect(() => CommandCatalog.fromText('t.a = tool\nt.b.stdin = <chapSecret>')).toThrow(/name no pattern t\.b/);
    expect(() => CommandCatalog.fromText('t.a = tool\nt.a.env.lower = <chapSecret>')).toThrow();
    const c = CommandCatalog.fromText('t.a = tool <chapUser>\nt.a.env.TOOL_PASSWORD = <chapSecret>\nt.b = tool');
    expect(c.uses('t.a', 'chapSecret')).toBe(true);
    expect(c.uses('t.a', 'chapUser')).toBe(true);
    expect(c.uses('t.b', 'chapSecret')).toBe(false);
  });

  it('reach the command on standard input, never in its argv', async () => {
    const seen: string[][] = [];
    const r = runner(['t.in = <node> <source> --user <chapUser> --password-stdin', 't.in.stdin = <chapSecret>'], seen);
    const out = JSON.parse((await r.run('t.in', { chapUser: 'vol-1.host', chapSecret: SECRET })).stdout) as { argv: string[]; input: string };
    expect(out.argv).toEqual(['--user', 'vol-1.host', '--password-stdin']);
    expect(out.input).toBe(`${SECRET}\n`);
    expect(seen.flat().join(' ')).not.toContain(SECRET);
  });

  it('reach the command in an environment variable, never in its argv', async () => {
    const seen: string[][] = [];
    const r = runner(['t.env = <node> <source> login', 't.env.env.TOOL_PASSWORD = <chapSecret>'], seen);
    const out = JSON.parse((await r.run('t.env', { chapSecret: SECRET })).stdout) as { argv: string[]; env: string | null };
    expect(out).toMatchObject({ argv: ['login'], env: SECRET });
    expect(seen.flat().join(' ')).not.toContain(SECRET);
  });

  it('a value that was not given is not delivered: the variable stays unset, standard input empty', async () => {
    const r = runner(['t.both = <node> <source> plain', 't.both.env.TOOL_PASSWORD = <chapSecret>', 't.in = <node> <source> plain', 't.in.stdin = <chapSecret>'], []);
    expect(JSON.parse((await r.run('t.both', {})).stdout)).toMatchObject({ env: null, input: '' });
    expect(JSON.parse((await r.run('t.in', {})).stdout)).toMatchObject({ input: '' });
  });

  it('a secret that fails its check is a client fault that does not repeat it, and nothing runs', async () => {
    const seen: string[][] = [];
    const r = runner(['t.in = <node> <source> x', 't.in.stdin = <chapSecret>'], seen);
    const bad = 'short,=secret\nwith-newline';
    const err = (await r.run('t.in', { chapSecret: bad }).catch((e: unknown) => e)) as VbsError;
    expect(err).toBeInstanceOf(VbsError);
    expect(err.code).toBe('InvalidParameterValue');
    expect(err.message).not.toContain('short');
    expect(seen).toEqual([]);
  });

  it('a failed command carries its argv, which holds no secret', async () => {
    const r = runner(['t.in = <node> <source> fail', 't.in.stdin = <chapSecret>'], []);
    const err = (await r.run('t.in', { chapSecret: SECRET }).catch((e: unknown) => e)) as CommandFailed;
    expect(err).toBeInstanceOf(CommandFailed);
    expect(JSON.stringify({ argv: err.argv, message: err.message })).not.toContain(SECRET);
    // What the tool printed stays in result (the delegate's log); our fixture echoes its input, real tools do not.
    expect(err.result.exitCode).toBe(3);
  });
});

describe('the shipped commands.properties', () => {
  const shipped = CommandCatalog.fromText(readFileSync(DEFAULT_COMMANDS_FILE, 'utf8'));

  it('gives every iSCSI initiator a way to the CHAP secret that is not argv (issue 17 item 8)', () => {
    // open-iscsi hosts (and the simulator's iscsiadm): the account goes into the node record, the secret on stdin.
    for (const adapter of ['sim', 'xen', 'xl', 'libvirt', 'proxmox']) {
      const key = `vmm.${adapter}.iscsi.auth`;
      expect(shipped.uses(key, 'chapSecret'), key).toBe(true);
      expect(shipped.delivery(key).stdin, key).toBe('chapSecret');
      expect(shipped.uses(key, 'chapUser'), key).toBe(true);
    }
    // Hypervisors that open the LUN themselves: QEMU through vbs-qmp, libvirt through a libvirt secret.
    expect(shipped.delivery('vmm.qemu.attach-iscsi').stdin).toBe('chapSecret');
    // (virsh reads a secret's value only from a file: the adapter writes a private one, test/delegates/vmm/libvirt-secret.test.ts.)
    expect(shipped.uses('vmm.libvirt.secret-set', 'path')).toBe(true);
    for (const action of ['secret-define', 'secret-undefine']) expect(shipped.has(`vmm.libvirt.${action}`)).toBe(true);
    // The target side: tgt's account tool. IET has none (ietadm takes a password only on argv).
    expect(shipped.delivery('iscsi.tgt.account-new').stdin).toBe('chapSecret');
  });
});
