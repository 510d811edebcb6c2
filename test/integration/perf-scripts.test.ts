/**
 * `npm run bench` and `npm run load` as a person runs them: each measures in a local cloud of its
 * own (a free port, a new temporary data directory) and leaves nothing in the temporary directory
 * afterwards, whether it ends or is stopped with Ctrl-C. Before, each bench size's data directory
 * (tables, fleet, keys: about 10 MB) was left behind as /tmp/kmod-bench-*, and a load run stopped
 * with Ctrl-C left /tmp/kmod-load-*. PORT and KMOD_DATA_DIR point where a cloud that used them
 * would fail (port 1) or leave a trace (a directory that must not appear).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../..');
/** The tests' own temporary directories (tsx's transform cache lands there too), removed at the end. */
const temporary: string[] = [];
const tempDir = (prefix: string) => {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  temporary.push(dir);
  return dir;
};
afterAll(() => {
  for (const d of temporary) rmSync(d, { recursive: true, force: true });
});

/** Processes that name `dir` in their command line (DynamoDB Local's -dbPath) or environment (KMOD_DATA_DIR), after up to 15 s for them to end. */
async function stillRunning(dir: string): Promise<string[]> {
  const naming = () =>
    readdirSync('/proc')
      .filter((e) => /^\d+$/.test(e) && Number(e) !== process.pid)
      .filter((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir) || readFileSync(`/proc/${pid}/environ`, 'utf8').includes(dir);
        } catch {
          return false;
        }
      });
  for (let i = 0; i < 75 && naming().length; i++) await new Promise((r) => setTimeout(r, 200));
  return naming();
}

/** The first `prefix*` directory of `tmp` holding `file`, waited for up to 120 s. */
async function dirWith(tmp: string, prefix: string, file: string, log: () => string): Promise<string> {
  for (let i = 0; i < 600; i++) {
    const dir = readdirSync(tmp).find((e) => e.startsWith(prefix));
    if (dir && existsSync(join(tmp, dir, file))) return join(tmp, dir);
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no ${prefix}*/${file} in ${tmp} after 120 s:\n${log()}`);
}

describe('npm run bench -- --sizes 3 --runs 1', () => {
  it('prints the size row and leaves no data directory behind', async () => {
    const tmp = tempDir('bench-cleanup-');
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
    const tmp = tempDir('load-interrupt-');
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/load.ts', '--scenarios', 'reads', '--seconds', '60'], {
      cwd: root,
      env: { ...process.env, TMPDIR: tmp, PORT: '1', KMOD_DATA_DIR: join(tmp, 'not-used') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((r) => child.once('exit', r));
    // Its cloud is up once cloud.json is in the data directory; the reads then run for minutes.
    const dir = await dirWith(tmp, 'kmod-load-', 'cloud.json', () => err);
    child.kill('SIGINT');
    expect(await exited, err).toBe(130);
    expect(existsSync(dir)).toBe(false);
    // Nothing of its cloud is left running, after the few seconds the JVM takes to notice.
    expect(await stillRunning(dir)).toEqual([]);
    expect(readdirSync(tmp).filter((e) => e.startsWith('kmod-') || e === 'not-used')).toEqual([]);
  }, 240_000);
});

describe('npm run bench -- --start, stopped with Ctrl-C at a terminal while it times a start', () => {
  it('stops the npm start it launched in its own process group, removes its directories and exits 130', async () => {
    const tmp = tempDir('bench-start-interrupt-');
    // Its own process group, as a terminal's foreground job: Ctrl-C is a SIGINT to the group.
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/bench.ts', '--start', '--runs', '1'], {
      cwd: root,
      env: { ...process.env, TMPDIR: tmp, PORT: '1', KMOD_DATA_DIR: join(tmp, 'not-used') },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.once('exit', r));
    const dir = await dirWith(tmp, 'kmod-start-bench-', 'cloud.json', () => out);
    process.kill(-child.pid!, 'SIGINT');
    expect(await exited, out).toBe(130);
    expect(await stillRunning(dir)).toEqual([]);
    expect(readdirSync(tmp).filter((e) => e.startsWith('kmod-') || e === 'not-used')).toEqual([]);
  }, 240_000);
});

describe('npm run bench -- --sizes, stopped with Ctrl-C at a terminal while a size runs', () => {
  it("the size's process stops its cloud and removes its data directory", async () => {
    const tmp = tempDir('bench-sizes-interrupt-');
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/bench.ts', '--sizes', '20', '--runs', '5'], {
      cwd: root,
      env: { ...process.env, TMPDIR: tmp, PORT: '1', KMOD_DATA_DIR: join(tmp, 'not-used') },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    // The fleet's directory is written while the cloud starts: Ctrl-C then, or during the runs.
    const dir = await dirWith(tmp, 'kmod-bench-', 'fleet', () => out);
    await new Promise((r) => setTimeout(r, 2000));
    process.kill(-child.pid!, 'SIGINT');
    await exited;
    // The measuring child outlives the parent by the cloud's stop.
    for (let i = 0; i < 100 && existsSync(dir); i++) await new Promise((r) => setTimeout(r, 200));
    expect(existsSync(dir), out).toBe(false);
    expect(await stillRunning(dir)).toEqual([]);
    expect(readdirSync(tmp).filter((e) => e.startsWith('kmod-') || e === 'not-used')).toEqual([]);
  }, 240_000);
});
