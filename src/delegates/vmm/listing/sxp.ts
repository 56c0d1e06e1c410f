/**
 * xend's S-expressions (`xm list --long`): `(name value ...)` lists of bare
 * words. Values never contain parentheses or spaces in what VBS reads (names,
 * device names, `file:`/`phy:` paths); quoting is not part of xend's printer.
 */
export type Sxp = string | Sxp[];

export function parseSxp(text: string): Sxp[] {
  const root: Sxp[] = [];
  const stack: Sxp[][] = [root];
  const tokens = text.match(/[()]|[^\s()]+/g) ?? [];
  for (const tok of tokens) {
    const top = stack[stack.length - 1]!;
    if (tok === '(') {
      const list: Sxp[] = [];
      top.push(list);
      stack.push(list);
    } else if (tok === ')') {
      if (stack.length > 1) stack.pop();
    } else top.push(tok);
  }
  return root;
}

/** The children `(key ...)` of a list, in order. */
export function children(list: Sxp, key: string): Sxp[][] {
  if (!Array.isArray(list)) return [];
  return list.filter((c): c is Sxp[] => Array.isArray(c) && c[0] === key);
}

/** The first value of `(key value)` inside a list. */
export function valueOf(list: Sxp, key: string): string | undefined {
  const v = children(list, key)[0]?.[1];
  return typeof v === 'string' ? v : undefined;
}
