/** `npm run bench` refuses bad sizes, runs and client counts before any cloud starts (before: NaN sizes started a cloud of NaN nodes). */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'kmod-bench-flags-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('npm run bench, bad options', () => {
  it.each([
    [['--sizes', 'abc'], '--sizes must be a whole number from 1 to 100000, got "abc"'],
    [['--sizes', '3,0'], '--sizes must be a whole number from 1 to 100000, got "0"'],
    [['--sizes=-5'], '--sizes must be a whole number'],
    [['--sizes', '3', '--runs', '0'], '--runs must be a whole number from 1 to 100, got "0"'],
    [['--sizes', '3', '--runs', '1.5'], '--runs must be a whole number'],
    [['--ws', 'NaN'], '--ws must be a whole number from 1 to 10000'],
    [['--size', '1e9'], '--size must be a whole number from 1 to 100000'],
    [['--bogus'], "Unknown option '--bogus'"],
  ])('%j exits 2 with the usage and starts nothing', (args, message) => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/bench.ts', ...args], {
      cwd: ROOT,
      env: { ...process.env, TMPDIR: tmp },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stderr).toContain('npm run bench');
    expect(readdirSync(tmp).filter((d) => d.startsWith('kmod-bench-'))).toEqual([]);
  });

  it('--help prints the usage and exits 0', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/bench.ts', '--help'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('npm run bench -- --sizes 3,20');
  });
});
