/**
 * `npm run bench` as a person runs it, at its smallest size: it measures in a local cloud of its
 * own (a free port, a new temporary data directory) and leaves nothing in the temporary directory
 * afterwards — each size's data directory (tables, fleet, keys: about 10 MB) used to be left
 * behind as /tmp/kmod-bench-*. PORT and KMOD_DATA_DIR point where a cloud that used them would
 * fail (port 1) or leave a trace (a directory that must not appear).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../..');

describe('npm run bench -- --sizes 3 --runs 1', () => {
  it('prints the size row and leaves no data directory behind', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'bench-cleanup-'));
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/bench.ts', '--sizes', '3', '--runs', '1'], {
      cwd: root,
      env: { ...process.env, TMPDIR: tmp, PORT: '1', KMOD_DATA_DIR: join(tmp, 'not-used') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    expect(code, err).toBe(0);
    expect(err).toContain('measuring 3 nodes (1 run)');
    expect(out).toMatch(/^3 +1 +\d+ +\d+ /m);
    expect(readdirSync(tmp).filter((e) => e.startsWith('kmod-') || e === 'not-used')).toEqual([]);
  }, 240_000);
});
