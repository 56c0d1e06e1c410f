import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CommandCatalog } from '../../../src/commands/catalog.js';
import { CommandRunner } from '../../../src/commands/runner.js';
import { DEFAULT_COMMANDS_FILE } from '../../../src/core/paths.js';
import { VbsError } from '../../../src/core/errors.js';
import { IscsiInitiator } from '../../../src/delegates/vmm/initiator.js';
import { faultOf } from '../../fault-of.js';

/**
 * The initiator's multi-command operations against the simulator's iscsiadm:
 * logout (logout, then forget the node) with each command failed in turn,
 * and a login whose outcome is unknown (it timed out) decided by the session
 * listing when the adapter has one.
 */
const ROOT = resolve(import.meta.dirname, '../../..');
const HOSTSIM = join(ROOT, 'dist', 'sim', 'hostsim.js');
const WRAPPER = join(ROOT, 'test', 'delegates', 'volume', 'fault-wrapper.mjs');
const PORTAL = '127.0.0.1:3260';
const IQN = 'iqn.2010-10.org.example:vol-0000000000000000a';
const LUN = { portal: PORTAL, iqn: IQN, lun: 1 };
const SESSIONS = 'vmm.sim.iscsi.sessions = <node> <vbsHome>/dist/sim/hostsim.js --state <stateDir> iscsiadm -m session';
/** Long enough for two node processes on a loaded machine. */
const LOGIN_TIMEOUT = 'vmm.sim.iscsi.login.timeoutMs = 10000';

let dir: string;
let state: string;
let faults: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vbs-initiator-'));
  state = join(dir, 'sim');
  faults = join(dir, 'faults');
  mkdirSync(faults);
  const lun = join(dir, 'lun1');
  writeFileSync(lun, '');
  truncateSync(lun, 4 * 1024 * 1024);
  sim('iscsi', 'target', 'add', PORTAL, IQN, `1=${lun}`);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function sim(...args: string[]): string {
  return execFileSync(process.execPath, [HOSTSIM, '--state', state, ...args], { encoding: 'utf8' });
}

/** The shipped patterns plus `extra`; `withoutSessions` drops the session listing (as an operator's file may lack it). */
function initiator(extra: string[] = [], withoutSessions = false): IscsiInitiator {
  const shipped = readFileSync(DEFAULT_COMMANDS_FILE, 'utf8')
    .split('\n')
    .filter((line) => !withoutSessions || !line.startsWith('vmm.sim.iscsi.sessions'))
    .join('\n');
  const catalog = CommandCatalog.fromText(`${shipped}\n${extra.join('\n')}\n`);
  return new IscsiInitiator('sim', new CommandRunner(catalog, { fixed: { node: process.execPath, vbsHome: ROOT, stateDir: state } }));
}

/** A simulator fault file (fail/… or hang/…) that breaks the next `count` runs of a verb. */
function simFault(kind: 'fail' | 'hang', name: string, text = '', count = 1): void {
  mkdirSync(join(state, kind), { recursive: true });
  writeFileSync(join(state, kind, name), text);
  writeFileSync(join(state, kind, `${name}.count`), String(count));
}

function iscsiState(): { sessions: { iqn: string }[]; nodes: { iqn: string }[] } {
  return (JSON.parse(sim('dump')) as { iscsi: { sessions: { iqn: string }[]; nodes: { iqn: string }[] } }).iscsi;
}

describe('iSCSI initiator: logout is an ensure operation', { timeout: 180_000 }, () => {
  it.each([
    ['logout', 'iscsiadm.logout'],
    ['forget', 'iscsiadm.node'],
  ])('%s failing leaves a state that logout again finishes', async (step, faultName) => {
    const i = initiator();
    await i.discover(LUN);
    await i.login(LUN);
    expect(iscsiState().sessions.map((s) => s.iqn)).toEqual([IQN]);
    simFault('fail', faultName);
    expect((await faultOf(i.logout(LUN))).message).toContain(`vmm.sim.iscsi.${step} exited with 1`);
    // The step before the broken one is done, the broken one and those after are not.
    expect(iscsiState().sessions.map((s) => s.iqn)).toEqual(step === 'logout' ? [IQN] : []);
    expect(iscsiState().nodes.map((n) => n.iqn)).toEqual([IQN]);
    await i.logout(LUN);
    expect(iscsiState()).toMatchObject({ sessions: [], nodes: [] });
    await i.logout(LUN); // and again: nothing left to do
  });
});

describe('iSCSI initiator: a login whose command timed out', { timeout: 180_000 }, () => {
  it('is failed when the session listing shows no session (it hung before acting), and login again works', async () => {
    const i = initiator([SESSIONS, LOGIN_TIMEOUT]);
    await i.discover(LUN);
    simFault('hang', 'iscsiadm.login', '3600');
    const err = await faultOf(i.login(LUN));
    expect(err.message).toContain('vmm.sim.iscsi.login timed out');
    expect(iscsiState().sessions).toEqual([]);
    expect(await i.login(LUN)).toBe(`/dev/disk/by-path/ip-${PORTAL}-iscsi-${IQN}-lun-1`);
    expect(iscsiState().sessions.map((s) => s.iqn)).toEqual([IQN]);
  });

  const actedThenHung = `vmm.sim.iscsi.login = <node> ${WRAPPER} ${'<faults>'} vmm.sim.iscsi.login <node> <vbsHome>/dist/sim/hostsim.js --state <stateDir> iscsiadm -m node -T <iqn> -p <portal> --login`;

  it('is done when the session listing shows the session (it logged in, then hung)', async () => {
    const i = initiator([actedThenHung.replace('<faults>', faults), SESSIONS, LOGIN_TIMEOUT]);
    await i.discover(LUN);
    writeFileSync(join(faults, 'vmm.sim.iscsi.login'), 'hang-after');
    expect(await i.login(LUN)).toBe(`/dev/disk/by-path/ip-${PORTAL}-iscsi-${IQN}-lun-1`);
    expect(iscsiState().sessions.map((s) => s.iqn)).toEqual([IQN]);
  });

  it('is reported as unknown without a session listing pattern, and logout (the undo) clears it', async () => {
    const i = initiator([actedThenHung.replace('<faults>', faults), LOGIN_TIMEOUT], true);
    await i.discover(LUN);
    writeFileSync(join(faults, 'vmm.sim.iscsi.login'), 'hang-after');
    expect((await faultOf(i.login(LUN))).message).toBe('vmm.sim.iscsi.login timed out (its outcome is unknown)');
    await i.logout(LUN);
    expect(iscsiState()).toMatchObject({ sessions: [], nodes: [] });
  });
});
