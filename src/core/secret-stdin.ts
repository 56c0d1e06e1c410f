/** The longest standard input a tool takes as a secret (VBS's are 12–128 characters). */
const MAX_INPUT = 1024;

/**
 * A secret a tool reads from its standard input (patterns deliver secrets
 * only there or in the environment, never in argv): one trailing newline
 * dropped, refused past MAX_INPUT so a stray stream cannot grow without end.
 */
export async function readSecretFromStdin(): Promise<string> {
  let text = '';
  for await (const chunk of process.stdin) {
    text += String(chunk);
    if (text.length > MAX_INPUT) throw new Error('standard input is too long for a secret');
  }
  return text.replace(/\r?\n$/, '');
}
