import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { freePort } from '../../src/core/free-port.js';
export { freePort };

/**
 * A real iSCSI target for tests: tgtd (userspace, Debian's `tgt`) on a free
 * loopback port with its own control port, exporting plain files as LUNs.
 * `stop()` deletes the targets, stops tgtd through tgtadm and by its PID.
 */
export interface RealTarget {
  readonly portal: string;
  /** tgtd's control port (tgtadm -C), for a test's own accounts and bindings. */
  readonly control: number;
  /** Exports `file` as LUN `lun` of a new target `iqn` (tid = 1, 2, ... in order). */
  add(iqn: string, file: string, lun?: number): number;
  /** Deletes a target (with --force, as a session may be open). */
  remove(tid: number): void;
  stop(): Promise<void>;
}


function tgtadm(control: number, args: string[]): { code: number | null; stderr: string } {
  const r = spawnSync('tgtadm', ['-C', String(control), ...args], { encoding: 'utf8', timeout: 10_000 });
  return { code: r.status, stderr: r.stderr ?? '' };
}

function must(control: number, args: string[]): void {
  const r = tgtadm(control, args);
  if (r.code !== 0) throw new Error(`tgtadm ${args.join(' ')}: ${r.code} ${r.stderr}`);
}

export async function startTgtd(): Promise<RealTarget> {
  const port = await freePort();
  let control = 0;
  for (let i = 0; i < 50 && control === 0; i++) {
    const n = 10_000 + Math.floor(Math.random() * 22_000); // tgtd takes -C up to 32767
    if (!existsSync(`/var/run/tgtd/socket.${n}`)) control = n;
  }
  const child: ChildProcess = spawn('tgtd', ['-f', '-C', String(control), '--iscsi', `portal=127.0.0.1:${port}`], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  let ready = false;
  for (let i = 0; i < 100 && !ready; i++) {
    ready = tgtadm(control, ['--lld', 'iscsi', '--op', 'show', '--mode', 'target']).code === 0;
    if (!ready) await new Promise((r) => setTimeout(r, 50));
  }
  const tids: number[] = [];
  const stop = async () => {
    for (const tid of tids.splice(0)) tgtadm(control, ['--lld', 'iscsi', '--op', 'delete', '--mode', 'target', '--tid', String(tid), '--force']);
    tgtadm(control, ['--op', 'delete', '--mode', 'system']);
    if (child.exitCode === null && child.signalCode === null) {
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      child.kill('SIGTERM');
      await exited;
      clearTimeout(timer);
    }
  };
  if (!ready) {
    await stop();
    throw new Error('tgtd did not start');
  }
  return {
    portal: `127.0.0.1:${port}`,
    control,
    add(iqn, file, lun = 1) {
      const tid = (tids.length ? Math.max(...tids) : 0) + 1;
      must(control, ['--lld', 'iscsi', '--op', 'new', '--mode', 'target', '--tid', String(tid), '-T', iqn]);
      tids.push(tid);
      must(control, ['--lld', 'iscsi', '--op', 'new', '--mode', 'logicalunit', '--tid', String(tid), '--lun', String(lun), '-b', file]);
      must(control, ['--lld', 'iscsi', '--op', 'bind', '--mode', 'target', '--tid', String(tid), '-I', 'ALL']);
      return tid;
    },
    remove(tid) {
      must(control, ['--lld', 'iscsi', '--op', 'delete', '--mode', 'target', '--tid', String(tid), '--force']);
      tids.splice(tids.indexOf(tid), 1);
    },
    stop,
  };
}
