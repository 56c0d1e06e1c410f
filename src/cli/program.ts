import { Command } from '@commander-js/extra-typings';
import { VERSION } from '../core/version.js';
import { registerAdminCommands } from './admin.js';
import { registerAttachmentCommands } from './attachments.js';
import { registerGlobalOptions } from './context.js';
import { processRuntime, type CliRuntime } from './runtime.js';
import { registerServe } from './serve.js';
import { registerSnapshotCommands } from './snapshots.js';
import { registerImageCommands } from './images.js';
import { registerUp } from './up.js';
import { registerVolumeCommands } from './volumes.js';
import { registerTagCommands } from './tags.js';
import { registerModificationCommands } from './modifications.js';

/**
 * The `vbs` program. Commander's own errors are thrown (exitOverride) rather
 * than exiting, so the caller decides the exit code (2 for usage errors), and
 * are printed as `vbs: ...` like ours. Both settings are inherited by every
 * command added afterwards, including other groups registered on the result.
 */
export function buildProgram(runtime: CliRuntime = processRuntime()): Command {
  const program = new Command('vbs');
  program
    .description('VBS, the Virtual Block Store: persistent block volumes for cloud VMs')
    .version(VERSION)
    .exitOverride()
    .showSuggestionAfterError()
    .configureOutput({
      writeOut: (text) => void runtime.stdout.write(text),
      writeErr: (text) => void runtime.stderr.write(text),
      outputError: (text, write) => write(text.replace(/^error: /, 'vbs: ')),
    });
  registerGlobalOptions(program);
  registerVolumeCommands(program, runtime);
  registerModificationCommands(program, runtime);
  registerSnapshotCommands(program, runtime);
  registerImageCommands(program, runtime);
  registerAttachmentCommands(program, runtime);
  registerTagCommands(program, runtime);
  registerAdminCommands(program, runtime);
  registerUp(program);
  registerServe(program);
  return program;
}
