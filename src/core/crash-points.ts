/**
 * Fault injection for crash tests, like the host simulator's fail/ and hang/
 * files: nothing happens unless the environment variable VBS_CRASH_AT names a
 * point, and then the process kills itself with SIGKILL when it gets there, as
 * a power cut or `kill -9` would: no handler, no cleanup, no flushed buffers.
 *
 * Points are named `<where>/<when>`:
 * - the front's workflow engine (docs/developers/engine.md, "Crash points"):
 *   `<Kind>/journaled` (the first journal transaction is committed, which
 *   journals step 1 as started too, so it is the same state as `<Kind>/1/before`),
 *   `<Kind>/<step>/before` and `<Kind>/<step>/after` (step numbered from 1,
 *   journaled as started / done; the last step's done is journaled with the
 *   commit, so its `after` is a committed workflow not yet answered),
 *   `<Kind>/commit` (the last step acted, and the transaction that journals
 *   it done and makes the final metadata change has not happened);
 * - any SOAP service: `<Service>.<Operation>/before` and `/after` around the
 *   operation's handler (e.g. `VolumeDelegate.CreateVolume/after`: the work is
 *   done, the answer never sent);
 * - the rbd back end: `volume.rbd.<action>/after` once a command that changes
 *   the cluster returned (e.g. `volume.rbd.snap-create/after`: the snapshot
 *   is taken, not yet protected, and nobody knows).
 *
 * Never set in production; test/e2e/crash drives it.
 */
export const CRASH_ENV = 'VBS_CRASH_AT';

export function crashPoint(point: string): void {
  const target = process.env[CRASH_ENV];
  if (!target || target !== point) return;
  // stderr is synchronous for files and pipes on Linux: the line is out before we die.
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level: 'warn', pid: process.pid, msg: 'crash point reached: SIGKILL', point })}\n`);
  process.kill(process.pid, 'SIGKILL');
}
