import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from '../core/log.js';
import { normalSerial } from '../pki/certificates.js';
import { crlEntries, revokedSerials } from '../pki/crl.js';

/** How often the CRL file is looked at when no file event came (events can be missed, e.g. on some network file systems). */
const POLL_MS = 500;

/**
 * A service's view of the VBS CA's revocation list (DIR/pki/ca.crl, written by
 * `vbs admin user revoke`). It is read at start, then watched (fs.watch on its
 * folder, since an atomic rename replaces the file, plus a stat poll every
 * 500 ms as a fallback); each new list, once its CA signature checks, is
 * handed to `onChange` (the server swaps its TLS context and cuts revoked
 * callers' open connections).
 *
 * A new file that is not a CRL signed by the CA is refused and logged, and
 * the list in force stays: every revocation known so far keeps holding, and a
 * stray file cannot lock every user out (files are written atomically, so a
 * half-written CRL is not a case). At start there is nothing to keep, so an
 * unreadable CRL stops the service (a configuration error).
 */
export class CrlWatch {
  private revoked: Set<string>;
  private pem: string;
  private signature: string;
  private readonly watcher: FSWatcher | undefined;
  private readonly poll: NodeJS.Timeout;
  private reloading: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly file: string,
    private readonly caPem: string | Buffer,
    private readonly log: Logger,
    private readonly onChange: (crlPem: string, revoked: ReadonlySet<string>) => void,
  ) {
    this.signature = fileSignature(file);
    this.pem = readFileSync(file, 'utf8');
    // Parsed now (the server needs it to start); its signature is checked by
    // OpenSSL at every handshake, and here on every reload.
    this.revoked = crlEntries(this.pem);
    try {
      this.watcher = watch(dirname(file), { persistent: false }, (_event, name) => {
        if (name === null || name.toString() === basename(file)) this.check();
      });
      this.watcher.on('error', (err) => log.warn('watching the CRL failed; polling only', { file, err }));
    } catch (err) {
      log.warn('cannot watch the CRL; polling only', { file, err });
    }
    this.poll = setInterval(() => this.check(), POLL_MS).unref();
  }

  /** The CRL in force, for the TLS context. */
  get crlPem(): string {
    return this.pem;
  }

  isRevoked(serial: string | undefined): boolean {
    return serial !== undefined && this.revoked.has(normalSerial(serial));
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    clearInterval(this.poll);
  }

  /** Reloads when the file changed; one reload at a time. */
  private check(): void {
    this.reloading = this.reloading.then(() => this.reload()).catch((err: unknown) => this.log.error('reloading the CRL failed', { file: this.file, err }));
  }

  private async reload(): Promise<void> {
    if (this.closed) return;
    let signature: string;
    try {
      signature = fileSignature(this.file);
    } catch (err) {
      if (this.signature !== 'missing') this.log.error('the CRL file cannot be read; the revocation list in force stays', { file: this.file, err });
      this.signature = 'missing';
      return;
    }
    if (signature === this.signature) return;
    this.signature = signature;
    const pem = readFileSync(this.file, 'utf8');
    let revoked: Set<string>;
    try {
      revoked = await revokedSerials(pem, this.caPem);
    } catch (err) {
      this.log.error('the new CRL is not a CRL signed by the VBS CA; the revocation list in force stays', { file: this.file, err });
      return;
    }
    if (this.closed) return;
    this.pem = pem;
    this.revoked = revoked;
    this.log.info('revocation list reloaded', { file: this.file, revoked: revoked.size });
    this.onChange(pem, revoked);
  }
}

function fileSignature(file: string): string {
  const s = statSync(file);
  return `${s.ino}:${s.size}:${s.mtimeMs}`;
}

