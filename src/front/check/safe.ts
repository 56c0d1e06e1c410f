import type { Fix } from './findings.js';

/**
 * Which repairs run unasked when a delegate comes back after an outage (the
 * front's reconciliation; `vbs admin check --repair` runs them all). Only
 * those that put back what the metadata already promises and that no request
 * or copy in progress could be deciding about:
 * - `reexport`: an attached volume's export, lost with the target daemon;
 * - `finish-delete`: a delete the user asked for whose data is gone.
 * Not the others: a volume or snapshot still being created belongs to the
 * creation monitor, which restarts a lost volume copy (a repair seeing it
 * absent meanwhile would mark it `error` for good); changing attachments,
 * withdrawing exports or detaching disks is an operator's decision.
 */
export function safeOnReturn(fix: Fix): boolean {
  return fix.type === 'reexport' || fix.type === 'finish-delete';
}
