import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { newAccountRequest, request, TgtdRefused } from '../../src/tgt/ipc.js';

/**
 * vbs-tgt-account speaks tgtadm's protocol so that a CHAP secret never sits
 * on a command line. Here a socket of our own stands in for tgtd
 * ($TGT_IPC_SOCKET, which tgtadm honours too): the request we send is
 * byte for byte the one real tgtadm sends, and tgtd's answers are read as
 * tgtadm reads them. (test/delegates/volume/tgt.test.ts runs it against a real tgtd.)
 */
const dir = mkdtempSync(join(tmpdir(), 'vbs-tgt-ipc-'));
const servers: Server[] = [];
afterAll(() => {
  for (const s of servers) s.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A fake tgtd that records one request and answers with `err`. */
function fakeTgtd(path: string, err: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const srv = createServer((s) => {
      const chunks: Buffer[] = [];
      s.on('data', (d) => {
        chunks.push(d);
        const got = Buffer.concat(chunks);
        if (got.length >= 120 && got.length >= got.readUInt32LE(72)) {
          const rsp = Buffer.alloc(8);
          rsp.writeUInt32LE(err, 0);
          rsp.writeUInt32LE(8, 4);
          s.end(rsp);
          resolve(got);
        }
      });
    });
    servers.push(srv);
    srv.listen(path);
  });
}

describe("tgtadm's management protocol", () => {
  it('sends exactly what tgtadm sends for a new account', async () => {
    const path = join(dir, 'tgtadm.sock');
    // tgtadm's default control port is 0: it connects to $TGT_IPC_SOCKET.0.
    const seen = fakeTgtd(`${path}.0`, 0);
    await new Promise<void>((resolve, reject) =>
      execFile('tgtadm', ['--lld', 'iscsi', '--mode', 'account', '--op', 'new', '--user', 'vol-0123456789abcdef0.host1', '--password', 'Secret_0123456789abcdef'], { env: { ...process.env, TGT_IPC_SOCKET: path } }, (e) => (e ? reject(e) : resolve())),
    );
    expect((await seen).equals(newAccountRequest('vol-0123456789abcdef0.host1', 'Secret_0123456789abcdef'))).toBe(true);
  });

  it("reads tgtd's refusal in tgtadm's words", async () => {
    const path = join(dir, 'refuses.sock');
    void fakeTgtd(`${path}.1`, 14);
    const saved = process.env.TGT_IPC_SOCKET;
    process.env.TGT_IPC_SOCKET = path;
    try {
      const err = await request(1, newAccountRequest('u', 'Secret_0123456789abcdef'), 5_000).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TgtdRefused);
      expect((err as TgtdRefused).message).toBe('this account already exists');
    } finally {
      if (saved === undefined) delete process.env.TGT_IPC_SOCKET;
      else process.env.TGT_IPC_SOCKET = saved;
    }
  });
});
