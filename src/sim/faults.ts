/**
 * Fault injection, driven by files in the state folder:
 *
 *   hang/<tool>.<verb>        sleep that many seconds (default 3600) before doing anything; the
 *                             sleep ends early once the file is removed (a test releases a
 *                             command it held at the moment it chooses)
 *   fail/<tool>.<verb>        print the file's text (or a default message) to stderr, exit 1,
 *                             change nothing
 *   fail/<tool>.<verb>.count  when present, how many more times to fail (decremented each time;
 *                             at 0 the command runs normally)
 *   fail/<tool>.<verb>.exit   when present, the exit code to use instead of 1
 *   fail-after/<tool>.<verb>  run the command, then report a failure as fail/ does (with the same
 *                             .count and .exit files): a tool that acted and then died or timed
 *                             out (libvirt giving up after QEMU took the device), whose exit
 *                             status says nothing of what it did
 *
 * The files stay until a test removes them. `<tool>` alone (no verb) matches every verb of
 * that tool. The same `.count` rule applies to `hang/`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { withLock, writeFileAtomic } from './state.js';

function keys(tool: string, verb: string): string[] {
  return verb ? [`${tool}.${verb}`, tool] : [tool];
}

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * True when the fault file applies this time. With a `.count` file, takes one
 * from the count under the state lock, so parallel commands share the budget.
 */
function armed(dir: string, file: string): boolean {
  if (!existsSync(file)) return false;
  const countFile = `${file}.count`;
  if (!existsSync(countFile)) return true;
  return withLock(dir, () => {
    const text = readText(countFile);
    if (text === undefined) return true;
    const n = Number.parseInt(text.trim(), 10);
    if (!Number.isFinite(n) || n <= 0) return false;
    writeFileAtomic(countFile, `${n - 1}\n`);
    return true;
  });
}

/** How often a held command looks whether its `hang/` file was removed. */
const RELEASE_CHECK_MS = 50;

/**
 * Waits as long as a `hang/` file says, if one applies, or until that file is
 * removed: a test holds a command exactly as long as it needs to, waiting for
 * events rather than guessing a duration.
 */
export async function maybeHang(dir: string, tool: string, verb: string): Promise<void> {
  for (const key of keys(tool, verb)) {
    const file = join(dir, 'hang', key);
    if (!armed(dir, file)) continue;
    const seconds = Number.parseFloat((readText(file) ?? '').trim());
    const ms = (Number.isFinite(seconds) && seconds >= 0 ? seconds : 3600) * 1000;
    const end = Date.now() + ms;
    for (let left = ms; left > 0 && existsSync(file); left = end - Date.now()) await delay(Math.min(left, RELEASE_CHECK_MS));
    return;
  }
}

export interface InjectedFailure {
  message: string;
  code: number;
}

/** The failure to report instead of running the command, if a `fail/` file applies. */
export function injectedFailure(dir: string, tool: string, verb: string): InjectedFailure | undefined {
  return failureIn(dir, 'fail', tool, verb);
}

/** The failure to report after the command ran, if a `fail-after/` file applies. */
export function injectedFailureAfter(dir: string, tool: string, verb: string): InjectedFailure | undefined {
  return failureIn(dir, 'fail-after', tool, verb);
}

function failureIn(dir: string, folder: string, tool: string, verb: string): InjectedFailure | undefined {
  for (const key of keys(tool, verb)) {
    const file = join(dir, folder, key);
    if (!armed(dir, file)) continue;
    const text = readText(file) ?? '';
    const message = text.trim() ? text : `${tool}: simulated failure (${key})\n`;
    const exitText = readText(`${file}.exit`);
    const parsed = exitText === undefined ? Number.NaN : Number.parseInt(exitText.trim(), 10);
    const code = Number.isInteger(parsed) && parsed > 0 && parsed < 256 ? parsed : 1;
    return { message, code };
  }
  return undefined;
}
