/**
 * A cloud whose instances one command describes: `resolver.<name>.show` in
 * commands.properties (with `<instanceId>`), and a parser for its output.
 * Adding a cloud is a pattern and one of these, registered in clouds/index.ts.
 */
export interface CloudParser {
  /** The resolver's name: its patterns are `resolver.<name>.*`, its configuration key `<name>`. */
  readonly name: string;
  /** Whether a failed show means "no such instance" rather than "cannot tell" (exit code, stderr). */
  notFound(exitCode: number | undefined, stderr: string): boolean;
  /** The show command's output as a described instance; throws when it is not what the tool prints. */
  parse(stdout: string): CloudInstance;
}

/** What a cloud says about one instance, in its own words. */
export interface CloudInstance {
  /** The compute host, as the cloud names it. */
  readonly host: string;
  /** The VM's name for the hypervisor on that host. */
  readonly vmId: string;
  /** The cloud's state word. */
  readonly state: string;
  readonly running: boolean;
  /** Who owns it in the cloud (a project, an account): mapped to VBS users by the configuration. */
  readonly account: string;
}
