import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const CEPH_SCRIPTS = resolve(import.meta.dirname, '../../scripts');

/** The one test cluster of this host: its folder, and its mon's msgr2 port (msgr1 is the next). */
export function testClusterDir(): string {
  return process.env.VBS_TEST_CEPH_DIR ?? join(tmpdir(), 'vbs-test-ceph');
}
export function testClusterPort(): number {
  return Number(process.env.VBS_TEST_CEPH_PORT ?? 3500);
}
