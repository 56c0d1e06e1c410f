import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ROOT } from './harness.js';

const CLI = join(ROOT, 'dist', 'cli', 'main.js');

/**
 * `vbs serve ROLE --config CONFIG` in `dir`, stopped with the test process
 * (its stdin closes), logged to dir/logs/LOGNAME.log; resolves with its URL
 * once it prints its ready line. The child is pushed onto `children`.
 */
export function serve(
  role: string,
  config: string,
  dir: string,
  children: ChildProcess[],
  logName = `${role}-${children.length + 1}`,
  /** A command that execs the rest, e.g. `ip netns exec NS`: the child is still the service itself. */
  launcher: readonly string[] = [],
): Promise<string> {
  const argv = [...launcher, process.execPath, CLI, 'serve', role, '--config', config, '--exit-with-parent'];
  const child = spawn(argv[0]!, argv.slice(1), { cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr = (stderr + String(d)).slice(-4000)));
  child.stderr!.pipe(createWriteStream(join(dir, 'logs', `${logName}.log`), { flags: 'a' }));
  return new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`${role} did not start in 60 s: ${stderr}`)), 60_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /^\{"ready":"([^"]+)"/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolveUrl(m[1]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${role} exited with ${code}: ${stderr}`));
    });
  });
}

/** Stops a child we started (SIGKILL after 10 s), by its handle. */
export function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(timer);
      done();
    });
    child.kill(signal);
  });
}
