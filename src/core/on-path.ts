import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Whether a command of that name is in a folder of PATH (looked up without a shell). */
export function onPath(command: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((d) => d && existsSync(join(d, command)));
}
