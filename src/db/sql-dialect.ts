/**
 * VBS's SQL is written once, in SQLite's dialect; this module rewrites it for
 * PostgreSQL. It is deliberately small: each rule below is one SQLite idiom the
 * metadata layer uses, turned into what PostgreSQL means by it, so a query reads
 * the same on both and the migrations are one list (src/db/migrations.ts).
 *
 * Queries: `?` and `@name` parameters become `$n`; `x IS ?` (SQLite's
 * null-safe equality) becomes IS NOT DISTINCT FROM; `? IS NULL` gets a type
 * (PostgreSQL cannot infer one); json_each/json_extract/instr become
 * json_array_elements_text/->>/strpos; INSERT OR IGNORE becomes ON CONFLICT DO
 * NOTHING; the column `user` (a reserved word, current_user, in PostgreSQL) is
 * quoted.
 *
 * Migrations, besides: INTEGER is BIGINT (SQLite's integers are 64-bit: a
 * generation raised to a clock reading in milliseconds, src/db/generations.ts,
 * does not fit PostgreSQL's 32-bit integer), INTEGER PRIMARY KEY
 * AUTOINCREMENT becomes an identity column, and a SQLite trigger (BEGIN ... END) becomes a PL/pgSQL function and
 * a FOR EACH ROW trigger that runs it.
 */

/** A query for PostgreSQL and where each `$n` takes its value from: a position in the call's arguments or a named one. */
export interface PgQuery {
  readonly text: string;
  readonly params: readonly (number | string)[];
}

/** Splits SQL into code and quoted parts ('literals', "identifiers"), dropping comments, so rules touch only code. */
function segments(sql: string): { code: boolean; text: string }[] {
  const out: { code: boolean; text: string }[] = [];
  let code = '';
  let i = 0;
  const flush = () => {
    if (code) out.push({ code: true, text: code });
    code = '';
  };
  while (i < sql.length) {
    const c = sql[i]!;
    if (c === "'" || c === '"') {
      let j = i + 1;
      for (;;) {
        if (j >= sql.length) break;
        if (sql[j] === c) {
          if (sql[j + 1] === c) j += 2;
          else break;
        } else j++;
      }
      flush();
      out.push({ code: false, text: sql.slice(i, j + 1) });
      i = j + 1;
    } else if (c === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      i = end < 0 ? sql.length : end;
    } else if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      i = end < 0 ? sql.length : end + 2;
      code += ' ';
    } else {
      code += c;
      i++;
    }
  }
  flush();
  return out;
}

/** Rewrites the code parts of SQL (never a quoted part) with fn. */
function inCode(sql: string, fn: (code: string) => string): string {
  return segments(sql)
    .map((s) => (s.code ? fn(s.text) : s.text))
    .join('');
}

/** The rules that hold for queries and migrations alike. */
function commonRules(code: string): string {
  return code
    .replace(/(?<![\w."$@:])user(?![\w"])/gi, '"user"')
    .replace(/\binstr\s*\(/gi, 'strpos(');
}

/** INSERT OR IGNORE INTO ... → INSERT INTO ... ON CONFLICT DO NOTHING (before a RETURNING). */
function insertOrIgnore(sql: string): string {
  if (!/^\s*INSERT\s+OR\s+IGNORE\b/i.test(sql)) {
    if (/^\s*(INSERT|REPLACE)\s+OR\s+REPLACE\b|^\s*REPLACE\s+INTO/i.test(sql)) throw new Error('INSERT OR REPLACE has no PostgreSQL form here: write ON CONFLICT ... DO UPDATE');
    return sql;
  }
  const body = sql.replace(/^\s*INSERT\s+OR\s+IGNORE\b/i, 'INSERT');
  const returning = /\bRETURNING\b/i.exec(body);
  return returning
    ? `${body.slice(0, returning.index)} ON CONFLICT DO NOTHING ${body.slice(returning.index)}`
    : `${body.replace(/;?\s*$/, '')} ON CONFLICT DO NOTHING`;
}

/** One query (a single statement) in PostgreSQL's dialect, its parameters numbered. */
export function toPostgresQuery(sql: string): PgQuery {
  const params: (number | string)[] = [];
  const named = new Map<string, number>();
  let positional = 0;
  const text = inCode(insertOrIgnore(sql), (code) => {
    let c = commonRules(code)
      .replace(/(\?|[@:$][A-Za-z_]\w*)\s+IS\s+(NOT\s+)?NULL\b/gi, (_m, p: string, not: string | undefined) => `CAST(${p} AS text) IS ${not ?? ''}NULL`)
      .replace(/\bIS\s+(\?|[@:$][A-Za-z_]\w*)/gi, 'IS NOT DISTINCT FROM $1')
      // SQLite reads a negative LIMIT as none; PostgreSQL refuses it (and reads NULL as none).
      .replace(/\bLIMIT\s+(\?|[@:$][A-Za-z_]\w*)/gi, 'LIMIT NULLIF(CAST($1 AS bigint), -1)');
    c = c.replace(/\?|(?<![\w:])[@:$]([A-Za-z_]\w*)/g, (m, name: string | undefined) => {
      if (name === undefined) {
        params.push(positional++);
        return `$${params.length}`;
      }
      let n = named.get(name);
      if (n === undefined) {
        params.push(name);
        n = params.length;
        named.set(name, n);
      }
      return `$${n}`;
    });
    return c.replace(/\bjson_each\s*\(\s*(\$\d+)\s*\)/gi, 'json_array_elements_text(CAST($1 AS json))');
  });
  // json_extract(col, '$.key') spans a code part and a literal: rewritten on the joined text.
  const json = text.replace(/json_extract\s*\(\s*([\w.]+)\s*,\s*'\$\.(\w+)'\s*\)/gi, "(CAST($1 AS json) ->> '$2')");
  return { text: json, params };
}

/** Whether a call's arguments are one object of named values (better-sqlite3's @name binding). */
export function isNamedArgs(args: readonly unknown[]): boolean {
  const a = args[0];
  return args.length === 1 && a !== null && typeof a === 'object' && !Array.isArray(a) && !(a instanceof Uint8Array);
}

/** The values of a PgQuery's `$n`: positional ones from the call's arguments, named ones from `named`. */
export function bindParams(q: PgQuery, positional: readonly unknown[], named: Readonly<Record<string, unknown>>): unknown[] {
  return q.params.map((p) => {
    const v = typeof p === 'number' ? positional[p] : named[p];
    if (v === undefined) throw new RangeError(`missing a value for SQL parameter ${typeof p === 'number' ? p + 1 : `@${p}`}`);
    return typeof v === 'bigint' ? v.toString() : v;
  });
}

/** Splits a migration into statements; a trigger's BEGIN ... END; is one. */
export function splitStatements(sql: string): string[] {
  const out: string[] = [];
  let current = '';
  let inTrigger = false;
  for (const s of segments(sql)) {
    if (!s.code) {
      current += s.text;
      continue;
    }
    for (const part of s.text.split(/(;)/)) {
      if (part !== ';') {
        current += part;
        if (/\bCREATE\s+TRIGGER\b/i.test(current) && /\bBEGIN\b/i.test(current)) inTrigger = true;
        continue;
      }
      current += ';';
      if (inTrigger && !/\bEND\s*;$/i.test(current.trim())) continue;
      if (current.trim() !== ';') out.push(current.trim());
      current = '';
      inTrigger = false;
    }
  }
  if (current.trim()) out.push(current.trim());
  return out;
}

/** A SQLite trigger as a PL/pgSQL function and the trigger that calls it. */
function trigger(stmt: string): string {
  const m = /^CREATE\s+TRIGGER\s+(\w+)\s+(BEFORE|AFTER)\s+(INSERT|UPDATE|DELETE)\s+ON\s+(\w+)\s+BEGIN\s+([\s\S]*?)\s*END\s*;$/i.exec(stmt);
  if (!m) throw new Error(`a trigger this translator does not know: ${stmt.slice(0, 80)}`);
  const [, name, when, event, table, body] = m as unknown as [string, string, string, string, string, string];
  // BEFORE DELETE must return OLD, or PostgreSQL skips the delete; an AFTER trigger's result is ignored.
  const result = when.toUpperCase() === 'BEFORE' ? (event.toUpperCase() === 'DELETE' ? 'OLD' : 'NEW') : 'NULL';
  return (
    `CREATE FUNCTION ${name}_fn() RETURNS trigger LANGUAGE plpgsql AS $vbs$ BEGIN ${body} RETURN ${result}; END $vbs$;\n` +
    `CREATE TRIGGER ${name} ${when} ${event} ON ${table} FOR EACH ROW EXECUTE FUNCTION ${name}_fn();`
  );
}

/** A migration (written for SQLite) in PostgreSQL's dialect. */
export function toPostgresMigration(sql: string): string {
  return splitStatements(sql)
    .map((stmt) => {
      const code = inCode(insertOrIgnore(stmt), (c) =>
        commonRules(c)
          .replace(/\bINTEGER\s+PRIMARY\s+KEY\s+AUTOINCREMENT\b/gi, 'BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY')
          .replace(/\bINTEGER\b/gi, 'BIGINT'),
      );
      return /^CREATE\s+TRIGGER\b/i.test(code) ? trigger(code) : code.endsWith(';') ? code : `${code};`;
    })
    .join('\n');
}
