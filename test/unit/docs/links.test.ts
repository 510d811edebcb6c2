/**
 * README.md and docs/**.md: every relative Markdown link resolves to a file or folder of the
 * repository, and every `#anchor` into a Markdown file names one of its headings (GitHub's slugs) or
 * an explicit `<a id>`/`<a name>`. A newcomer follows these links first; a renamed file or heading
 * must not leave one dangling. Links inside fenced code blocks are example text, not links.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../../..');

function markdownFiles(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return markdownFiles(path);
    return e.name.endsWith('.md') ? [path] : [];
  });
}

/** Lines of a Markdown file outside fenced code blocks, with their 1-based numbers. */
function proseLines(file: string): { line: string; n: number }[] {
  const out: { line: string; n: number }[] = [];
  let fence: string | null = null;
  readFileSync(join(root, file), 'utf8')
    .split('\n')
    .forEach((line, i) => {
      const m = /^\s*(`{3,}|~{3,})/.exec(line);
      if (m) {
        if (fence === null) fence = m[1][0];
        else if (m[1][0] === fence) fence = null;
        return;
      }
      if (fence === null) out.push({ line, n: i + 1 });
    });
  return out;
}

/** GitHub's heading anchor: lower case, markup and punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<[^>]+>/g, '')
    .replace(/`/g, '')
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

const anchorCache = new Map<string, Set<string>>();
function anchorsOf(file: string): Set<string> {
  const cached = anchorCache.get(file);
  if (cached) return cached;
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const { line } of proseLines(file)) {
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (h) {
      const base = slug(h[1]);
      const count = seen.get(base);
      anchors.add(count === undefined ? base : `${base}-${count + 1}`);
      seen.set(base, count === undefined ? 0 : count + 1);
    }
    for (const a of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(a[1]);
  }
  anchorCache.set(file, anchors);
  return anchors;
}

interface Link {
  file: string;
  n: number;
  url: string;
}

function relativeLinks(file: string): Link[] {
  return proseLines(file).flatMap(({ line, n }) =>
    [...line.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)]
      .map((m) => m[1])
      .filter((url) => !/^[a-z][a-z0-9+.-]*:/i.test(url))
      .map((url) => ({ file, n, url })),
  );
}

/** Why a link does not resolve, or null when it does. */
function brokenBecause({ file, url }: Link): string | null {
  const [path, anchor] = url.split('#', 2);
  const target = path ? normalize(join(dirname(file), decodeURIComponent(path))) : file;
  if (relative(root, join(root, target)).startsWith('..')) return `${target} is outside the repository`;
  if (!existsSync(join(root, target))) return `no file ${target}`;
  if (anchor && target.endsWith('.md') && !anchorsOf(target).has(anchor)) return `no heading #${anchor} in ${target}`;
  return null;
}

const files = ['README.md', ...markdownFiles('docs')];

describe('links in README.md and docs/', () => {
  it('finds the Markdown files and their links', () => {
    expect(files.length).toBeGreaterThan(20);
    expect(files.flatMap(relativeLinks).length).toBeGreaterThan(100);
  });

  it('makes GitHub-style anchors of headings', () => {
    expect(slug('A tamper-evident audit trail')).toBe('a-tamper-evident-audit-trail');
    expect(slug('API reference: `GET /openapi.json` and `GET /docs`')).toBe('api-reference-get-openapijson-and-get-docs');
    expect(slug('A node that would not roll back (`RollbackFailed`)')).toBe('a-node-that-would-not-roll-back-rollbackfailed');
  });

  it('resolves every relative link to an existing file and heading', () => {
    const broken = files
      .flatMap(relativeLinks)
      .map((link) => ({ link, why: brokenBecause(link) }))
      .filter((b) => b.why !== null)
      .map(({ link, why }) => `${link.file}:${link.n}: (${link.url}) ${why}`);
    expect(broken).toEqual([]);
  });

  it('reports a link to a missing file or heading', () => {
    expect(brokenBecause({ file: 'README.md', n: 1, url: 'docs/no-such-file.md' })).toBe('no file docs/no-such-file.md');
    expect(brokenBecause({ file: 'README.md', n: 1, url: '#no-such-heading' })).toBe('no heading #no-such-heading in README.md');
    expect(brokenBecause({ file: 'docs/runbooks/rollback.md', n: 1, url: '../architecture.md' })).toBeNull();
  });
});
