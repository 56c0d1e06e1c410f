import type { Record as XmlRecord } from '../soap/xml.js';

/** How far a volume delegate got with a create before answering it. */
export interface MadeState {
  /** ready: the data is in place; error: making it failed; creating: a copy goes on in the background. */
  readonly state: 'ready' | 'creating' | 'error';
  readonly message?: string;
}

const FALLBACK_MESSAGE = 'the volume delegate could not create the data';

/** Reads a CreateVolume or CreateSnapshot answer; a delegate that says nothing (an older one) is still creating. */
export function madeState(answer: XmlRecord): MadeState {
  if (answer.state === 'ready') return { state: 'ready' };
  if (answer.state === 'error') return { state: 'error', message: typeof answer.message === 'string' ? answer.message : FALLBACK_MESSAGE };
  return { state: 'creating' };
}
