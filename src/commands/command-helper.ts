/**
 * The command helper: a small long-lived process beside a delegate that
 * starts its host commands (src/commands/helper-client.ts is the other end).
 * A `spawn` forks the process that calls it and waits, on its event loop,
 * until the child has exec'd: from a delegate that is a service's heap and
 * its request loop; from here it is a process of a few MB doing nothing
 * else ([process starts](../../docs/process-starts.md)).
 *
 * Each line on standard input is one request (JSON): the argv, the options of
 * runProcessGroup (timeout, environment, standard input, limits), and an id.
 * Each command runs through runProcessGroup, the same code the delegate ran
 * it with before: no shell, its own process group, the timeout kills the
 * whole group, bounded output. Lines out: `{id, pgid}` once it started (so
 * the client can kill the group if this helper dies), then `{id, result}`.
 * The request stream is private to the delegate (a pipe), so a secret on the
 * command's standard input or in its environment never reaches an argv.
 *
 * When the delegate goes (its end of the pipe closes), the helper exits, and
 * runProcessGroup's exit hook kills the groups still running, as it did in
 * the delegate.
 */
import { createInterface } from 'node:readline';
import { runProcessGroup, type GroupOptions } from './process-group.js';

export interface HelperRequest {
  readonly id: number;
  readonly file: string;
  readonly args: readonly string[];
  readonly options: GroupOptions;
}

export type HelperMessage = { readonly id: number; readonly pgid: number } | { readonly id: number; readonly result: Awaited<ReturnType<typeof runProcessGroup>> };

function send(message: HelperMessage): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

function serve(): void {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  lines.on('line', (line) => {
    let request: HelperRequest;
    try {
      request = JSON.parse(line) as HelperRequest;
    } catch {
      // Only the delegate writes here; a line it did not write means the pipe is not ours: stop.
      process.exit(2);
    }
    void runProcessGroup(request.file, request.args, { ...request.options, onStart: (pgid) => send({ id: request.id, pgid }) }).then((result) => send({ id: request.id, result }));
  });
  lines.on('close', () => process.exit(0));
}

serve();
