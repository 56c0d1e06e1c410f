import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

/**
 * What a repository host (GitHub, GitLab, Gitea) does with a Markdown link,
 * checked offline: a relative link must name a file or folder of the
 * repository, and a `#fragment` must be an anchor the host makes for a heading
 * of the target file (or an explicit `<a id>` / `<a name>` in it).
 */

/** One link that does not resolve: where it is, what it says, and why it fails. */
export interface BrokenLink {
  readonly file: string;
  readonly line: number;
  readonly target: string;
  readonly why: string;
}

/** The Markdown files the documentation is made of: README.md and everything under docs/. */
export function documentationFiles(root: string): string[] {
  const files = [join(root, 'README.md')];
  const walk = (dir: string): void => {
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.md')) files.push(path);
    }
  };
  walk(join(root, 'docs'));
  return files;
}

/**
 * The text of a Markdown file with fenced code blocks blanked (their lines
 * kept, so line numbers stay right) and inline code spans removed: a link or a
 * heading inside code is text, not a link or a heading.
 */
export function withoutCode(markdown: string): string[] {
  const out: string[] = [];
  let fence: string | undefined;
  for (const line of markdown.split('\n')) {
    const opener = /^ {0,3}(`{3,}|~{3,})/.exec(line);
    if (fence) {
      if (opener && opener[1]![0] === fence[0] && opener[1]!.length >= fence.length && line.trim() === opener[1]) fence = undefined;
      out.push('');
      continue;
    }
    if (opener) {
      fence = opener[1]!;
      out.push('');
      continue;
    }
    out.push(line.replace(/(`+)(?:(?!\1).)+?\1/g, ''));
  }
  return out;
}

/**
 * The anchor GitHub gives a heading (github-slugger): the heading's text as
 * rendered (code spans keep their content, links their text, emphasis loses
 * its markers), lower-cased, every character that is not a letter, mark,
 * digit, connector (`_`), hyphen or space dropped, and each space a hyphen.
 */
export function slug(headingText: string): string {
  const rendered = headingText
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/`([^`]*)`/g, '$1')
    .replace(/<[^>]+>/g, '')
    .replace(/(\*\*|__|\*|_)(?=\S)([^*_]*?\S)\1/g, '$2');
  return rendered
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** Every anchor a file offers: its headings' slugs (repeats numbered -1, -2 … as GitHub does) and explicit HTML ids. */
export function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  const lines = markdown.split('\n');
  let fence: string | undefined;
  for (const line of lines) {
    const opener = /^ {0,3}(`{3,}|~{3,})/.exec(line);
    if (fence) {
      if (opener && opener[1]![0] === fence[0] && opener[1]!.length >= fence.length && line.trim() === opener[1]) fence = undefined;
      continue;
    }
    if (opener) {
      fence = opener[1]!;
      continue;
    }
    const heading = /^ {0,3}#{1,6}\s+(.*?)(?:\s+#+\s*)?$/.exec(line);
    if (heading) {
      const base = slug(heading[1]!);
      const n = seen.get(base) ?? 0;
      seen.set(base, n + 1);
      anchors.add(n === 0 ? base : `${base}-${n}`);
    }
    for (const m of line.matchAll(/<a\s+(?:[^>]*\s)?(?:id|name)="([^"]+)"/g)) anchors.add(m[1]!);
  }
  return anchors;
}

/**
 * The link targets of a file, each with the line it ends on: inline links and
 * images `[t](target "title")`, whose text may run over several lines, and
 * reference definitions `[r]: target`.
 */
export function linksIn(markdown: string): { line: number; target: string }[] {
  const found: { line: number; index: number; target: string }[] = [];
  const text = withoutCode(markdown).join('\n');
  const lineAt = (index: number) => text.slice(0, index).split('\n').length;
  for (const m of text.matchAll(/!?\[(?:[^\]\\]|\\.)*\]\(\s*(<[^>\n]*>|[^)\s]+)(?:\s+"[^"\n]*")?\s*\)/g)) {
    const at = m.index + m[0].length - 1;
    found.push({ line: lineAt(at), index: at, target: m[1]!.replace(/^<(.*)>$/, '$1') });
  }
  for (const m of text.matchAll(/^ {0,3}\[[^\]\n]+\]:[ \t]*(<[^>\n]*>|\S+)/gm)) {
    found.push({ line: lineAt(m.index), index: m.index, target: m[1]!.replace(/^<(.*)>$/, '$1') });
  }
  return found.sort((a, b) => a.index - b.index).map(({ line, target }) => ({ line, target }));
}

/**
 * Checks every relative link of the given files. `pending` names files (paths
 * from the root) that may be linked before they exist; a link into one with a
 * fragment is still checked once the file is there.
 */
export function brokenLinks(root: string, files: readonly string[], pending: readonly string[] = []): BrokenLink[] {
  const broken: BrokenLink[] = [];
  const anchorCache = new Map<string, Set<string>>();
  const anchorsFor = (path: string): Set<string> => {
    let set = anchorCache.get(path);
    if (!set) anchorCache.set(path, (set = anchorsOf(readFileSync(path, 'utf8'))));
    return set;
  };
  for (const file of files) {
    const rel = relative(root, file);
    for (const { line, target } of linksIn(readFileSync(file, 'utf8'))) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: …: not a file of the repository
      const fail = (why: string) => broken.push({ file: rel, line, target, why });
      const hash = target.indexOf('#');
      const pathPart = decodeURIComponent(hash < 0 ? target : target.slice(0, hash));
      const fragment = hash < 0 ? undefined : decodeURIComponent(target.slice(hash + 1));
      if (pathPart.startsWith('/')) {
        fail('an absolute path: a repository host resolves it against the host, not the repository');
        continue;
      }
      const resolved = pathPart === '' ? file : resolve(dirname(file), pathPart);
      const inRepo = relative(root, resolved);
      if (inRepo.startsWith('..') || inRepo.split(sep).includes('node_modules')) {
        fail('leads out of the repository');
        continue;
      }
      if (!existsSync(resolved)) {
        if (!pending.includes(inRepo.split(sep).join('/'))) fail('no such file or folder');
        else if (fragment !== undefined) fail('a fragment into a file that does not exist yet');
        continue;
      }
      if (fragment === undefined || fragment === '') continue;
      if (!statSync(resolved).isFile() || !resolved.endsWith('.md')) {
        fail('a fragment on something that is not a Markdown file');
        continue;
      }
      if (!anchorsFor(resolved).has(fragment)) fail(`no heading or anchor #${fragment} in ${relative(root, resolved)}`);
    }
  }
  return broken;
}
