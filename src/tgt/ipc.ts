import { connect } from 'node:net';

/**
 * tgtd's management protocol, as tgtadm speaks it (tgt 1.0.x, usr/tgtadm.h):
 * one request per connection on the unix socket /var/run/tgtd/socket.<port>
 * ($TGT_IPC_SOCKET.<port> when set, as tgtadm does), a 120-byte little-endian header followed by the
 * parameters as `name=value,...` and a NUL; the answer is `{err, len}` and
 * len - 8 bytes of text. VBS speaks it for the one request tgtadm can only
 * make with a secret on its command line: a new CHAP account
 * (`tgtadm --mode account --op new --user U --password P`).
 */
const MODE_ACCOUNT = 7;
const OP_NEW = 0;
const HEADER_BYTES = 120;
const LLD_BYTES = 64;

/** tgtadm's own words for tgtd's error codes (usr/tgtadm_error.h), for the ones an account can get. */
const ERRORS: Record<number, string> = {
  1: 'unknown error',
  2: 'out of memory',
  3: "can't find the driver",
  14: 'this account already exists',
  15: "can't find the account",
  16: 'too many accounts',
  17: 'invalid request',
  23: 'unknown parameter',
};

export class TgtdRefused extends Error {
  constructor(readonly code: number) {
    super(ERRORS[code] ?? `tgtd error ${code}`);
  }
}

export function socketPath(controlPort: number): string {
  return `${process.env.TGT_IPC_SOCKET || '/var/run/tgtd/socket'}.${controlPort}`;
}

/** The bytes tgtadm sends for `--lld iscsi --mode account --op new --user U --password P`. */
export function newAccountRequest(user: string, password: string): Buffer {
  const params = Buffer.from(`user=${user},password=${password}\0`, 'utf8');
  const h = Buffer.alloc(HEADER_BYTES);
  h.writeUInt32LE(MODE_ACCOUNT, 0);
  h.writeUInt32LE(OP_NEW, 4);
  h.write('iscsi', 8, LLD_BYTES, 'latin1');
  h.writeUInt32LE(HEADER_BYTES + params.length, 72); // len
  h.writeInt32LE(-1, 76); // tid: none
  h.writeBigUInt64LE(0n, 80); // sid
  h.writeBigUInt64LE(0xffff_ffff_ffff_ffffn, 88); // lun: none
  // cid, host_no, device_type (disk), ac_dir (incoming), pack, force: 0
  return Buffer.concat([h, params]);
}

/** Sends one request and resolves with tgtd's text, or rejects with TgtdRefused / the socket's error. */
export function request(controlPort: number, bytes: Buffer, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(socketPath(controlPort));
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => s.destroy(new Error(`tgtd did not answer within ${timeoutMs} ms`)), timeoutMs);
    s.once('connect', () => s.write(bytes));
    s.on('data', (d) => chunks.push(d));
    s.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.once('close', () => {
      clearTimeout(timer);
      const b = Buffer.concat(chunks);
      if (b.length < 8) return reject(new Error('tgtd closed the socket without an answer'));
      const err = b.readUInt32LE(0);
      if (err !== 0) return reject(new TgtdRefused(err));
      resolve(b.subarray(8, Math.max(8, b.readUInt32LE(4))).toString('utf8'));
    });
  });
}
