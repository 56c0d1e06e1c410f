import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { PkiStore } from '../../../src/pki/store.js';
import { VMM_DELEGATE_SERVICE } from '../../../src/services/vmm-delegate.js';
import { VOLUME_DELEGATE_SERVICE } from '../../../src/services/volume-delegate.js';
import { SoapClient } from '../../../src/soap/client.js';
import type { Record as XmlRecord } from '../../../src/soap/xml.js';
import { eventually, ROOT, tempDir } from './helpers.js';

/**
 * The Volume Delegate as a real process (`vbs serve volume-delegate`), driven
 * over SOAP with the front's certificate. stopDelegates() in afterEach.
 */
const children: ChildProcess[] = [];
const clients: SoapClient[] = [];

export async function stopDelegates(): Promise<void> {
  for (const c of clients.splice(0)) c.close();
  for (const c of children.splice(0)) await killChild(c, 'SIGTERM');
}

export function killChild(c: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((r) => c.once('exit', () => r()));
  c.kill(signal);
  return exited;
}

export interface Delegate {
  process: ChildProcess;
  client: SoapClient;
}

/** A volume-delegate.json with its own PKI, for this `backend` (and any other top-level settings). */
export function writeDelegateConfig(backend: object, extra: object = {}): string {
  const dir = tempDir('vbs-vd-proc-');
  const pki = new PkiStore(join(dir, 'pki'));
  pki.ensureCa();
  pki.ensureIdentity('volume-delegate', { commonName: 'vbs-volume-delegate', use: 'server', hosts: ['127.0.0.1'] });
  pki.ensureIdentity('front', { commonName: 'vbs-front', use: 'server+client', hosts: ['127.0.0.1'] });
  const file = join(dir, 'volume-delegate.json');
  writeFileSync(
    file,
    JSON.stringify({
      role: 'volume-delegate',
      listen: { host: '127.0.0.1', port: 0 },
      tls: { key: 'pki/volume-delegate.key', cert: 'pki/volume-delegate.crt', ca: 'pki/ca.crt' },
      backend,
      ...extra,
    }),
  );
  return file;
}

/** Starts `vbs serve <role>` on `config` (a volume delegate unless told; the PKI is in pki/ beside it, with front.{key,crt}). */
export async function startDelegate(config: string, role: 'volume-delegate' | 'vmm-delegate' = 'volume-delegate'): Promise<Delegate> {
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'vbs.js'), 'serve', role, '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr = (stderr + String(d)).slice(-8000)));
  const url = await new Promise<string>((resolveUrl, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const msg = JSON.parse(line) as { ready?: string };
        if (msg.ready) resolveUrl(msg.ready);
      } catch {
        // not the control line
      }
    });
    child.once('exit', (code) => reject(new Error(`delegate exited with ${code}: ${stderr}`)));
  });
  const dir = join(config, '..', 'pki');
  const client = new SoapClient({
    def: role === 'volume-delegate' ? VOLUME_DELEGATE_SERVICE : VMM_DELEGATE_SERVICE,
    url,
    tls: { key: readFileSync(join(dir, 'front.key')), cert: readFileSync(join(dir, 'front.crt')), ca: readFileSync(join(dir, 'ca.crt')) },
  });
  clients.push(client);
  return { process: child, client };
}

export async function describeOne(c: SoapClient, id: string): Promise<XmlRecord> {
  return ((await c.call('DescribeObjects', { id: [id] })).object as XmlRecord[])[0]!;
}

export async function until(c: SoapClient, id: string, state: string): Promise<XmlRecord> {
  return eventually(async () => {
    const o = await describeOne(c, id);
    if (o.state === 'error' && state !== 'error') throw new Error(`${id}: ${String(o.message)}`);
    return o.state === state ? o : undefined;
  });
}
