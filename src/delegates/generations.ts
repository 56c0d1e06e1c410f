import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { VbsError } from '../core/errors.js';
import { KeyedMutex } from '../core/keyed-mutex.js';
import type { Handler, Handlers } from '../soap/server.js';
import type { Record as XmlRecord } from '../soap/xml.js';

/**
 * A delegate's memory of the generations it acted on (issue 16).
 *
 * The front numbers the workflows on each volume or snapshot (1, 2, 3...) and
 * every call it makes for a workflow carries that workflow's generation. A
 * call can reach the host late: a runner whose claim expired while its call
 * hung, or an undo run from a stale copy. The front cannot stop a call it
 * already sent, so the delegate does: it remembers, per thing it acts on (a
 * VM's disk, a host's iSCSI session, an export to a VMM host, a stored
 * object), the highest generation that put it in place and the highest that
 * took it away, and refuses an action older than the last opposite one.
 *
 * Only opposite directions conflict. Two ensures of the same direction (two
 * read-only attaches sharing one export, a step retried) commute, so an older
 * one still passes. An equal generation passes when it withdraws (the same
 * workflow undoing its own step), not when it sets up again after its own
 * withdrawal (that step arrived late, after its undo).
 *
 * A call without a generation (a front older than this rule) counts as
 * generation 0: it passes until a numbered workflow acted the other way on
 * the same thing, and is refused after.
 */
export type Direction = 'add' | 'remove';

/** What a guarded operation acts on, read from its (already validated) input. */
export interface Guarded {
  readonly key: string;
  readonly direction: Direction;
}

/** Per operation: what it acts on. Throws a client fault for invalid input (before anything is recorded). */
export type GuardRules = Readonly<Record<string, (input: XmlRecord) => Guarded>>;

/** The highest generation a delegate acted on, per thing and direction; on disk so a restart keeps it. */
export class GenerationMemory {
  private readonly db: Database.Database;

  /** `file`: a SQLite file in the delegate's state, or ':memory:' (tests that build a delegate in-process). */
  constructor(file: string) {
    if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('busy_timeout = 10000');
    // NORMAL (as the front's database): with WAL a recorded generation survives
    // the delegate's process dying at any point; only a machine crash can lose
    // the last few, and then the host's own state was cut off with them.
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(`CREATE TABLE IF NOT EXISTS acted (
      key TEXT PRIMARY KEY,
      added INTEGER NOT NULL DEFAULT 0,
      removed INTEGER NOT NULL DEFAULT 0
    )`);
  }

  /** What was done on `key` so far (0: nothing numbered). */
  seen(key: string): { added: number; removed: number } {
    const r = this.db.prepare('SELECT added, removed FROM acted WHERE key = ?').get(key) as { added: number; removed: number } | undefined;
    return r ?? { added: 0, removed: 0 };
  }

  /**
   * Refuses an action older than the last opposite one on its key; otherwise
   * records it (before it runs: once accepted, it may act).
   */
  admit(key: string, direction: Direction, generation: number): void {
    const seen = this.seen(key);
    const opposite = direction === 'add' ? seen.removed : seen.added;
    // A set-up no newer than the last withdrawal is late: a workflow never sets
    // up again what its own undo took away (its undos run last), so one of the
    // same generation is its own step delivered after that undo (a stalled
    // call, a runner whose claim ran out). A withdrawal of the same generation
    // is the undo of its own step, and passes. Generation 0 (a front older
    // than generations) keeps the old rule.
    const late = direction === 'add' && generation > 0 && generation === opposite;
    if (generation < opposite || late) {
      throw new VbsError(
        'StaleGeneration',
        `Refused: this request is from generation ${generation} of its resource, and generation ${opposite} already ${direction === 'add' ? 'withdrew' : 'set up'} ${key}. Nothing was changed.`,
      );
    }
    const column = direction === 'add' ? 'added' : 'removed';
    this.db
      .prepare(`INSERT INTO acted (key, ${column}) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET ${column} = max(${column}, excluded.${column})`)
      .run(key, generation);
  }

  close(): void {
    this.db.close();
  }
}

/** The generation a call carries: a non-negative integer, or absent (0: a front older than generations). */
export function generationOf(input: XmlRecord): number {
  const g = input.generation;
  if (g === undefined) return 0;
  if (typeof g !== 'number' || !Number.isSafeInteger(g) || g < 0) {
    throw new VbsError('InvalidParameterValue', 'Value for parameter generation is invalid: expected a non-negative integer.');
  }
  return g;
}

/**
 * Wraps a delegate's handlers so each guarded operation is admitted by the
 * memory before it runs. One guarded call at a time per key: an older call
 * that arrives while a newer opposite one runs waits for it, then is refused,
 * and two calls never race on the host in an order nobody chose.
 */
export function guardGenerations(handlers: Handlers, rules: GuardRules, memory: GenerationMemory): Handlers {
  const perKey = new KeyedMutex();
  const wrap =
    (op: string, h: Handler): Handler =>
    (input, ctx) => {
      const rule = rules[op];
      if (!rule) return h(input, ctx);
      const generation = generationOf(input);
      const { key, direction } = rule(input);
      return perKey.run(key, async () => {
        memory.admit(key, direction, generation);
        return h(input, ctx);
      });
    };
  return Object.fromEntries(Object.entries(handlers).map(([op, h]) => [op, wrap(op, h)]));
}
