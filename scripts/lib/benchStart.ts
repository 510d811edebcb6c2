/**
 * `npm run bench -- --start`: how long `npm start` takes from the command to a healthy `/health`,
 * as a person runs it, measured N times in each of two cases:
 *
 * - fresh: an empty data directory and an empty TypeScript transform cache (tsx keeps it under
 *   the temporary directory: TMPDIR points at a new one), as on a fresh clone after `npm ci`;
 * - existing: the data directory the previous run left (tables, fleet, keys, seeded modules), and
 *   the transform cache warm.
 *
 * With `--baseline <checkout>` (another checkout with node_modules, e.g. a clone of main) the runs
 * alternate between it and this checkout, so both see the same machine load: before/after side
 * by side in one run. The phase breakdown of this checkout's last existing-data start is printed
 * too (KMOD_START_TIMINGS=1).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { percentile } from './stats.ts';

const HERE = resolve(fileURLToPath(import.meta.url), '../../..');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * What a Ctrl-C must clean up: the `npm start` being timed runs in its own process group
 * (detached, so it can be stopped as a whole), which a terminal's Ctrl-C does not reach; without
 * this, the bench died and left that local cloud running, and its directories behind.
 */
const running: { child?: ChildProcess; dirs: string[] } = { dirs: [] };
let interrupted = false;
async function onInterrupt() {
  if (interrupted) return;
  interrupted = true;
  const { child } = running;
  if (child?.pid && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    process.kill(-child.pid, 'SIGINT');
    await Promise.race([exited, sleep(15_000)]);
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid, 'SIGKILL');
  }
  for (const d of running.dirs) rmSync(d, { recursive: true, force: true });
  process.exit(130);
}

interface StartRun {
  ms: number;
  output: string;
}

/** `npm start` in `checkout` with its data in `dataDir`: the time to a healthy /health, then Ctrl-C. */
async function timeStart(checkout: string, dataDir: string, extraEnv: Record<string, string>): Promise<StartRun> {
  const file = join(dataDir, 'cloud.json');
  rmSync(file, { force: true });
  const t0 = performance.now();
  const child = spawn('npm', ['start'], {
    cwd: checkout,
    env: { ...process.env, PORT: '0', KMOD_DATA_DIR: dataDir, KMOD_START_TIMINGS: '1', ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  running.child = child;
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  let ended = false;
  void exited.then(() => (ended = true));
  try {
    let apiUrl: string | undefined;
    for (;;) {
      if (ended) throw new Error(`npm start in ${checkout} exited before it was healthy:\n${output}`);
      if (performance.now() - t0 > 120_000) throw new Error(`npm start in ${checkout} was not healthy within 120 s:\n${output}`);
      if (!apiUrl && existsSync(file)) {
        try {
          apiUrl = (JSON.parse(readFileSync(file, 'utf8')) as { apiUrl: string }).apiUrl;
        } catch {
          /* being written */
        }
      }
      if (apiUrl) {
        const status = await fetch(`${apiUrl}/health`).then(
          (r) => r.arrayBuffer().then(() => r.status),
          () => 0,
        );
        if (status === 200) break;
      }
      await sleep(20);
    }
    const ms = performance.now() - t0;
    // The banner (and the phase breakdown) follow /health by a moment.
    for (let i = 0; i < 100 && !output.includes('Ctrl-C stops everything'); i++) await sleep(20);
    return { ms, output };
  } finally {
    if (!ended && child.pid) process.kill(-child.pid, 'SIGINT');
    await Promise.race([exited, sleep(15_000)]);
    if (!ended && child.pid) process.kill(-child.pid, 'SIGKILL');
  }
}

/** The table's title: "alternating" only when a baseline's runs alternate with this checkout's. */
export function startTitle(runs: number, withBaseline: boolean): string {
  return `npm start to a healthy /health, ${runs} run(s)${withBaseline ? ' each, alternating' : ''} (goal: existing ≤ 3 s, fresh ≤ 5 s)`;
}

export async function benchStart(runs: number, baseline?: string): Promise<void> {
  process.once('SIGINT', () => void onInterrupt());
  process.once('SIGTERM', () => void onInterrupt());
  const checkouts = [...(baseline ? [{ name: 'baseline', dir: resolve(baseline) }] : []), { name: 'this checkout', dir: HERE }];
  const results = new Map(checkouts.map((c) => [c.name, { fresh: [] as number[], existing: [] as number[] }]));
  let phases = '';
  for (let i = 0; i < runs; i++) {
    for (const c of checkouts) {
      const dataDir = mkdtempSync(join(tmpdir(), 'kmod-start-bench-'));
      const cacheDir = mkdtempSync(join(tmpdir(), 'kmod-start-tmp-'));
      running.dirs = [dataDir, cacheDir];
      try {
        const fresh = await timeStart(c.dir, dataDir, { TMPDIR: cacheDir });
        const existing = await timeStart(c.dir, dataDir, {});
        results.get(c.name)!.fresh.push(fresh.ms);
        results.get(c.name)!.existing.push(existing.ms);
        process.stderr.write(`run ${i + 1}/${runs} ${c.name}: fresh ${(fresh.ms / 1000).toFixed(1)} s, existing ${(existing.ms / 1000).toFixed(1)} s\n`);
        if (c.dir === HERE) phases = /start-up phases[\s\S]*?startLocalCloud in total.*\n/.exec(existing.output)?.[0] ?? '';
      } catch (e) {
        // Stopped by Ctrl-C: the start failed because onInterrupt stopped it; it exits when done.
        if (interrupted) await new Promise(() => undefined);
        throw e;
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
        rmSync(cacheDir, { recursive: true, force: true });
      }
    }
  }
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`.padStart(8);
  console.log(`\n${startTitle(runs, checkouts.length > 1)}\n`);
  console.log(`${'checkout'.padEnd(16)} ${'fresh p50'.padStart(10)} ${'fresh max'.padStart(10)} ${'existing p50'.padStart(13)} ${'existing max'.padStart(13)}`);
  for (const c of checkouts) {
    const r = results.get(c.name)!;
    console.log(
      `${c.name.padEnd(16)} ${s(percentile(r.fresh, 50)).padStart(10)} ${s(Math.max(...r.fresh)).padStart(10)} ${s(percentile(r.existing, 50)).padStart(13)} ${s(Math.max(...r.existing)).padStart(13)}`,
    );
  }
  if (phases) console.log(`\nthis checkout, last start with existing data, ${phases}`);
}
