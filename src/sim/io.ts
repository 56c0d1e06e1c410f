/** Buffered stdout/stderr of one simulated command, written out when it ends. */
export class Io {
  readonly out: string[] = [];
  readonly err: string[] = [];

  print(text: string): void {
    this.out.push(text.endsWith('\n') ? text : `${text}\n`);
  }

  /** Writes without adding a newline (prompts). */
  write(text: string): void {
    this.out.push(text);
  }

  eprint(text: string): void {
    this.err.push(text.endsWith('\n') ? text : `${text}\n`);
  }
}

/** A tool's entry point: returns the exit code. */
export type ToolMain = (io: Io, dir: string, args: string[]) => number | Promise<number>;

export interface ToolDef {
  run: ToolMain;
  /** The verb used for fault injection (`fail/<tool>.<verb>`); undefined for management verbs. */
  verbOf?: (args: string[]) => string;
}

/** Pads like printf's %-Ns. */
export function padEnd(s: string | number, n: number): string {
  return String(s).padEnd(n);
}

/** Pads like printf's %Ns. */
export function padStart(s: string | number, n: number): string {
  return String(s).padStart(n);
}
