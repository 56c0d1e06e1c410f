import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommandCatalog } from '../../src/commands/catalog.js';
import { fillPattern, parsePattern } from '../../src/commands/pattern.js';
import { CommandFailed, CommandRunner } from '../../src/commands/runner.js';
import { DEFAULT_COMMANDS_FILE } from '../../src/core/paths.js';
import { VbsError } from '../../src/core/errors.js';

describe('command patterns', () => {
  it('splits into words and fills placeholders inside their word', () => {
    const p = parsePattern('vmm.xen.attach', 'xm block-attach <vmId> file:<path> <vmDev> <mode>');
    expect(fillPattern(p, { vmId: 'vm1', path: '/srv/v/vol-0123456789abcdef0.img', vmDev: 'xvdb', mode: 'w' })).toEqual({
      file: 'xm',
      args: ['block-attach', 'vm1', 'file:/srv/v/vol-0123456789abcdef0.img', 'xvdb', 'w'],
    });
  });

  it.each([
    ['a quote', `xm block-attach '<vmId>'`],
    ['a pipe', 'lvs | grep x'],
    ['a redirection', 'dd if=/dev/zero of=<path> > /tmp/x'],
    ['a variable', 'rm -f $HOME/<path>'],
    ['a command separator', 'rm -f <path>; reboot'],
  ])('refuses shell syntax at load: %s', (_what, text) => {
    expect(() => parsePattern('k', text)).toThrow(/shell syntax/);
  });

  it('refuses an unknown placeholder at load', () => {
    expect(() => parsePattern('k', 'rm -f <pth>')).toThrow(/unknown placeholder <pth>/);
  });

  it.each([
    ['vmId', 'vm1; rm -rf /'],
    ['vmId', '--force'],
    ['vmId', '$(reboot)'],
    ['vmDev', '../../etc'],
    ['path', '/srv/volumes/../../etc/passwd'],
    ['path', 'relative/file'],
    ['mode', 'rw'],
    ['bytes', '12abc'],
  ])('refuses hostile value for <%s>: %s', (name, value) => {
    const p = parsePattern('k', `tool <${name}>`);
    expect(() => fillPattern(p, { [name]: value })).toThrow(VbsError);
    try {
      fillPattern(p, { [name]: value });
    } catch (err) {
      expect((err as VbsError).code).toBe('InvalidParameterValue');
    }
  });

  it('the shipped commands.properties loads, and every adapter is complete', () => {
    const c = CommandCatalog.fromFile(DEFAULT_COMMANDS_FILE);
    // No default adapter: a VMM delegate must name its own (fail closed).
    expect(c.setting('vmm.adapter')).toBeUndefined();
    for (const a of ['sim', 'xen', 'xl', 'libvirt', 'qemu', 'proxmox']) expect(() => c.requireAll([`vmm.${a}.attach`, `vmm.${a}.detach`])).not.toThrow();
    expect(c.pattern('vmm.libvirt.attach', 'r').text).toContain('--mode readonly');
    expect(c.pattern('vmm.libvirt.attach', 'w').text).not.toContain('readonly');
  });
});

describe('settings in commands.properties', () => {
  it('reads a timeout for a pattern key of any depth, and does not take it for a pattern', () => {
    const c = CommandCatalog.fromText('vmm.sim.attach-device = xm block-attach <vmId> phy:<vmmDev> <vmDev> <mode>\nvmm.sim.attach-device.timeoutMs = 4000\nvmm.xen.iscsi.login.timeoutMs = 15000');
    expect(c.setting('vmm.sim.attach-device.timeoutMs')).toBe('4000');
    expect(c.setting('vmm.xen.iscsi.login.timeoutMs')).toBe('15000');
    expect(c.has('vmm.sim.attach-device.timeoutMs')).toBe(false);
    expect(c.has('vmm.sim.attach-device')).toBe(true);
  });

  it('refuses a timeout that is not a whole number of milliseconds when it loads', () => {
    expect(() => CommandCatalog.fromText('vmm.sim.attach.timeoutMs = soon')).toThrow(/vmm.sim.attach.timeoutMs must be a whole number of milliseconds/);
    expect(() => CommandCatalog.fromText('vmm.sim.attach.timeoutMs = 0')).toThrow(/whole number/);
  });
});

describe('command runner', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vbs-runner-'));
  // Tiny programs for the runner to run (patterns themselves cannot hold code).
  const script = (name: string, code: string): string => {
    const f = join(dir, name);
    writeFileSync(f, code);
    return f;
  };
  const echo = script('echo.mjs', 'process.stdout.write(process.argv[2]);');
  const fail = script('fail.mjs', "console.error('boom'); process.exit(3);");
  const hang = script('hang.mjs', 'setTimeout(() => {}, 60000);');

  it('runs the argv with no shell: metacharacters in a value stay one literal argument', async () => {
    const runner = new CommandRunner(CommandCatalog.fromText(`t.echo = ${process.execPath} ${echo} <path>`));
    const weird = join(dir, 'a b;c&&d|e$(f)');
    const r = await runner.run('t.echo', { path: weird });
    expect(r.stdout).toBe(weird);
  });

  it('reports a failing command with its key and exit code; what it printed stays out of the message, for the log', async () => {
    const runner = new CommandRunner(CommandCatalog.fromText(`t.fail = ${process.execPath} ${fail}`));
    await expect(runner.run('t.fail', {})).rejects.toSatisfy(
      (e: unknown) => e instanceof CommandFailed && e.code === 'OperationFailed' && e.message === 't.fail exited with 3' && /boom/.test(e.result.stderr),
    );
  });

  it('times out a hung command and kills it', async () => {
    const runner = new CommandRunner(
      CommandCatalog.fromText(`t.hang = ${process.execPath} ${hang}\nt.hang.timeoutMs = 300`),
    );
    await expect(runner.run('t.hang', {})).rejects.toThrow(/timed out/);
  });

  it('does not start anything when a value is refused', async () => {
    const marker = join(dir, 'ran');
    const runner = new CommandRunner(CommandCatalog.fromText(`t.touch = touch ${marker} <vmId>`));
    await expect(runner.run('t.touch', { vmId: 'x;y' })).rejects.toThrow(/not acceptable/);
    expect(existsSync(marker)).toBe(false);
    expect(() => readFileSync(marker)).toThrow();
  });
});
