import { describeTwoFronts } from './two-front-cases.js';

/** Two fronts on one PostgreSQL (a schema of the run's cluster, test/setup/postgres.ts; the cases: two-front-cases.ts). */
describeTwoFronts('postgres');
