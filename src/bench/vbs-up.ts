import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { VBS_HOME } from '../core/paths.js';

const VBS_BIN = join(VBS_HOME, 'bin', 'vbs.js');
const START_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 30_000;

/** A `vbs up` a bench started (its child): its URL, and how to stop it. */
export interface BenchDeployment {
  url: string;
  stop(): Promise<void>;
}

/**
 * Starts `vbs up --data dir --port 0 ...args` and waits (bounded) until it
 * says it is up; its stderr goes to `stderrFile`. stop() ends it (TERM, then
 * KILL after 30 s) and waits for it.
 */
export async function startVbsUp(dir: string, args: readonly string[], stderrFile: string): Promise<BenchDeployment> {
  const child = spawn(process.execPath, [VBS_BIN, 'up', '--data', dir, '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const stopOnExit = () => child.kill('SIGTERM');
  process.once('exit', stopOnExit);
  const log = createWriteStream(stderrFile);
  child.stderr!.pipe(log);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      reject(new Error(`vbs up did not start within ${START_TIMEOUT_MS / 1000} s (see ${stderrFile})`));
    }, START_TIMEOUT_MS);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /^VBS is up: (\S+)/.exec(line);
      if (!m) return;
      clearTimeout(timer);
      resolve(m[1]!);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`vbs up exited with ${code} (see ${stderrFile})`));
    });
  });
  return {
    url,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }
      process.removeListener('exit', stopOnExit);
      await new Promise<void>((r) => log.end(r));
    },
  };
}
