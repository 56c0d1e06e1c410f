import { long } from '../soap/schema.js';

/** The optional `generation` input of the delegates' operations that change a host (issue 16, src/delegates/generations.ts). */
export const GENERATION = long('generation', {
  optional: true,
  doc: "the generation of the workflow this call belongs to (its resource's workflows are numbered 1, 2, 3...); the delegate refuses, with StaleGeneration and changing nothing, a call older than one that already did the opposite on the same thing. Absent: 0.",
});
