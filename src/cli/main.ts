import { runCli } from './run.js';

// `vbs describe-volumes | head -1` closes the pipe early: not an error, and no stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') process.stderr.write(`vbs: cannot write the output: ${err.message}\n`);
  process.exit(err.code === 'EPIPE' ? 0 : 1);
});

// Set, not process.exit(): stdout may still be flushing into a pipe.
process.exitCode = await runCli(process.argv);
