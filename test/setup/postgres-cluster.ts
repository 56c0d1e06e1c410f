/** The throw-away PostgreSQL the tests start (src/deploy/pg-throwaway.ts: the bench starts one too). */
export { createDatabase, freePort, PG_BIN, removeCluster, startCluster, startServer, stopServer, type PgCluster } from '../../src/deploy/pg-throwaway.js';
