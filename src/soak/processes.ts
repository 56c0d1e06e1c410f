import { readdirSync, readFileSync } from 'node:fs';

/**
 * Reading the process tree from /proc, to find the services `vbs up` runs
 * and the host commands the delegates run. Every function tolerates a process
 * that is gone by the time it is read (they come and go all the time here).
 */

/** The fields of /proc/PID/stat after the command name: [state, ppid, ...]. */
function stat(pid: number): string[] | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** Its command line, arguments joined by spaces ('' once it is gone). */
export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return '';
  }
}

/** Alive and not a zombie. */
export function isRunning(pid: number): boolean {
  const s = stat(pid);
  return s !== undefined && s[0] !== 'Z';
}

/** Stopped by a signal (SIGSTOP): state T. */
export function isStopped(pid: number): boolean {
  return stat(pid)?.[0] === 'T';
}

export function parentOf(pid: number): number | undefined {
  const s = stat(pid);
  return s ? Number(s[1]) : undefined;
}

/**
 * The running children of `pid`, from /proc/PID/task/TID/children (cheap:
 * no scan of every process, so it can be polled often to catch a host
 * command that lives a few milliseconds).
 */
export function childrenOf(pid: number): number[] {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const kids = new Set<number>();
  for (const tid of tasks) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8');
    } catch {
      continue;
    }
    for (const word of text.split(/\s+/)) if (/^[0-9]+$/.test(word)) kids.add(Number(word));
  }
  return [...kids].filter(isRunning);
}

/** Whether `pid` is a descendant of `ancestor` (walking up the parents). */
export function isDescendantOf(pid: number, ancestor: number): boolean {
  for (let p: number | undefined = pid, hops = 0; p !== undefined && p > 1 && hops < 64; hops++) {
    p = parentOf(p);
    if (p === ancestor) return true;
  }
  return false;
}

/** Sends `signal`, ignoring a process that is already gone; true when it was delivered. */
export function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}
