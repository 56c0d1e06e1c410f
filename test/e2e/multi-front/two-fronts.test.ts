import { describeTwoFronts } from './two-front-cases.js';

/** Two fronts on one SQLite file (the cases: two-front-cases.ts). */
describeTwoFronts('sqlite');
