import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { anchorsOf, brokenLinks, documentationFiles, slug } from './links.js';

const ROOT = resolve(import.meta.dirname, '../..');

/**
 * Documents other engineers are writing at the same time as docs/ was made
 * (issue 18's move). README.md and docs/README.md link them already; they
 * arrive at merge. The lead empties this list when they have, so that from
 * then on a link to a missing file fails like any other.
 */
const PENDING: string[] = [];

describe('the documentation as a repository host shows it', () => {
  it('every relative link in README.md and docs/**/*.md names a file or folder that exists, and every #fragment a heading there', () => {
    const files = documentationFiles(ROOT);
    expect(files.map((f) => f.slice(ROOT.length + 1))).toEqual(expect.arrayContaining(['README.md', 'docs/README.md', 'docs/api.md']));
    expect(brokenLinks(ROOT, files, PENDING)).toEqual([]);
  });

  it('README.md keeps the two set-up commands exactly as they are', () => {
    const text = readFileSync(join(ROOT, 'README.md'), 'utf8');
    expect(text).toContain('npm start     # installs on first run, then runs VBS on 127.0.0.1:8443 (Ctrl-C stops it)');
    expect(text).toContain('npm test      # installs what the tests need, then runs every test');
  });
});

describe('the link checker', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vbs-doc-links-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('makes the anchors GitHub makes', () => {
    expect(slug('VBS — the Virtual Block Store')).toBe('vbs--the-virtual-block-store');
    expect(slug('Reconciliation: `vbs admin check`')).toBe('reconciliation-vbs-admin-check');
    expect(slug("The lvm-iscsi back end (the VBS paper's classic path)")).toBe('the-lvm-iscsi-back-end-the-vbs-papers-classic-path');
    expect(slug('Users: ownership, sharing, quotas and the audit log')).toBe('users-ownership-sharing-quotas-and-the-audit-log');
    expect(slug('**Bold** and [a link](x.md) and snake_case')).toBe('bold-and-a-link-and-snake_case');
    expect([...anchorsOf('# A\n## A\n```\n# not a heading\n```\n<a id="here"></a>\n')]).toEqual(['a', 'a-1', 'here']);
  });

  it('finds a missing file, a missing anchor, a link out of the repository and an absolute path; ignores code, URLs and pending files', () => {
    mkdirSync(join(dir, 'docs'), { recursive: true });
    writeFileSync(join(dir, 'docs', 'real.md'), '# Real heading\n');
    writeFileSync(
      join(dir, 'README.md'),
      [
        '[ok](docs/real.md#real-heading) [ok too](docs/) [url](https://example.org/x.md#nope) [self](#title)',
        '# Title',
        '[gone](docs/gone.md) [bad anchor](docs/real.md#nope) [out](../elsewhere.md) [abs](/docs/real.md)',
        '`[in code](docs/gone.md)`',
        '```',
        '[in a fence](docs/gone.md)',
        '```',
        '[later](docs/pending.md) [later, with a fragment](docs/pending.md#x)',
        '[ref]: docs/also-gone.md',
        'A [link whose text',
        'runs over two lines](docs/real.md#missing)',
      ].join('\n'),
    );
    const found = brokenLinks(dir, documentationFiles(dir), ['docs/pending.md']);
    expect(found.map((b) => [b.line, b.target])).toEqual([
      [3, 'docs/gone.md'],
      [3, 'docs/real.md#nope'],
      [3, '../elsewhere.md'],
      [3, '/docs/real.md'],
      [8, 'docs/pending.md#x'],
      [9, 'docs/also-gone.md'],
      [11, 'docs/real.md#missing'],
    ]);
  });
});
