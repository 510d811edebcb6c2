/**
 * `npm run bench` and `npm run load` as a person runs them: each measures in a local cloud of its
 * own (a free port, a new temporary data directory) and leaves nothing in the temporary directory
 * afterwards, whether it ends or is stopped with Ctrl-C. Before, each bench size's data directory
 * (tables, fleet, keys: about 10 MB) was left behind as /tmp/kmod-bench-*, and a load run stopped
 * with Ctrl-C left /tmp/kmod-load-*. PORT and KMOD_DATA_DIR point where a cloud that used them
 * would fail (port 1) or leave a trace (a directory that must not appear).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
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

describe('npm run load, stopped with Ctrl-C while its cloud runs', () => {
  it('stops its cloud, removes its data directory and exits 130', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'load-interrupt-'));
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/load.ts', '--scenarios', 'reads', '--seconds', '60'], {
      cwd: root,
      env: { ...process.env, TMPDIR: tmp, PORT: '1', KMOD_DATA_DIR: join(tmp, 'not-used') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((r) => child.once('exit', r));
    // Its cloud is up once cloud.json is in the data directory; the reads then run for minutes.
    const dataDir = async () => {
      for (let i = 0; i < 600; i++) {
        const dir = readdirSync(tmp).find((e) => e.startsWith('kmod-load-'));
        if (dir && existsSync(join(tmp, dir, 'cloud.json'))) return join(tmp, dir);
        await new Promise((r) => setTimeout(r, 200));
      }
      throw new Error(`no cloud.json in ${tmp} after 120 s:\n${err}`);
    };
    const dir = await dataDir();
    child.kill('SIGINT');
    expect(await exited, err).toBe(130);
    expect(existsSync(dir)).toBe(false);
    // Nothing of its cloud is left running: no process names the data directory (DynamoDB Local's
    // JVM does, in its -dbPath), after the few seconds the JVM takes to notice.
    const running = () =>
      readdirSync('/proc')
        .filter((e) => /^\d+$/.test(e))
        .filter((pid) => {
          try {
            return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir);
          } catch {
            return false;
          }
        });
    for (let i = 0; i < 75 && running().length; i++) await new Promise((r) => setTimeout(r, 200));
    expect(running()).toEqual([]);
    expect(readdirSync(tmp).filter((e) => e.startsWith('kmod-') || e === 'not-used')).toEqual([]);
  }, 240_000);
});
