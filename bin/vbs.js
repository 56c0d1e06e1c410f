#!/usr/bin/env node
// The `vbs` command. The TypeScript sources are compiled by `npm ci`/`npm install`
// (the package's prepare script), so there is no build step to remember.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
if (!existsSync(main)) {
  process.stderr.write('vbs: dist/ is missing; run `npm install` (or `npm run build`) in the VBS folder first.\n');
  process.exit(1);
}
await import(main);
