import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { VBS_HOME } from '../core/paths.js';
import { SERVICES } from '../services/index.js';
import { generateWsdl } from '../soap/wsdl.js';

/**
 * Writes wsdl/*.wsdl from the service tables (`npm run wsdl`). The running
 * services serve the same documents with their own address; a test keeps the
 * committed files in step with the tables.
 */
export function committedWsdl(): { file: string; text: string }[] {
  return SERVICES.map(({ file, def, defaultUrl }) => ({ file: join(VBS_HOME, 'wsdl', file), text: generateWsdl(def, defaultUrl) }));
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\/dist\//, '/dist/'))) {
  for (const { file, text } of committedWsdl()) writeFileSync(file, text);
}
