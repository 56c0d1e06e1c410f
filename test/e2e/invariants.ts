/**
 * The deployment invariants live with the soak, which checks them after its
 * chaos (src/soak/invariants.ts); the e2e tests use the same checker.
 */
export * from '../../src/soak/invariants.js';
