#!/usr/bin/env node
// Test fixture: runs one host command, or breaks it, as a one-shot fault file says.
//   fault-wrapper.mjs <faultDir> <key> <program> <args...>
// <faultDir>/<key> holds the mode, and is claimed (renamed) by the one run it breaks:
//   fail        exit 1 without running the command (it did nothing)
//   fail-after  run the command, then exit 1 anyway (it did its work but says it failed)
//   hang-after  run the command, then never answer, a child holding our output
//               (it did its work but times out: its outcome is unknown to the caller)
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, renameSync } from 'node:fs';

const [faultDir, key, program, ...args] = process.argv.slice(2);
let mode = '';
try {
  const claimed = `${faultDir}/.${key}.${process.pid}`;
  renameSync(`${faultDir}/${key}`, claimed);
  mode = readFileSync(claimed, 'utf8').trim();
} catch {
  // no fault for this key: run it as it is
}
if (mode === 'fail') {
  process.stderr.write(`${key}: injected failure\n`);
  process.exit(1);
}
const run = spawnSync(program, args, { stdio: 'inherit' });
if (mode === 'fail-after') {
  process.stderr.write(`${key}: injected failure after the command ran\n`);
  process.exit(1);
}
if (mode === 'hang-after') {
  spawn('sleep', ['3600'], { stdio: ['ignore', 'inherit', 'inherit'] });
  setInterval(() => {}, 60_000);
} else {
  process.exit(run.status ?? 1);
}
