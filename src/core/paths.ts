import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';

/** The VBS installation folder (holds commands.properties, wsdl/ and dist/). */
export const VBS_HOME = resolve(fileURLToPath(new URL('../../', import.meta.url)));

export const DEFAULT_COMMANDS_FILE = resolve(VBS_HOME, 'commands.properties');
