/**
 * `npm run load` interrupted mid-run puts the rate limits it raised back and stops the local cloud
 * it started (no DynamoDB Local JVM, no Node process left, the data directory gone). Before: Ctrl-C
 * stopped the cloud without putting the limits back or removing its data directory, and SIGTERM to
 * the script left the cloud (Node and Java) running with the limits raised, for good.
 * Bad options are refused before any cloud starts.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const tmpDirs: string[] = [];
const children: ChildProcess[] = [];

afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null && c.pid) killGroup(c.pid, 'SIGKILL');
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

function killGroup(pid: number, signal: NodeJS.Signals) {
  try {
    process.kill(-pid, signal);
  } catch {
    /* gone */
  }
}

/** Processes (any) whose command line or environment names `dir`: the cloud's Node, its tsx, its JVM. */
function processesUsing(dir: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const text = `${readFileSync(`/proc/${pid}/cmdline`, 'utf8')}\0${readFileSync(`/proc/${pid}/environ`, 'utf8')}`;
      if (text.includes(dir)) found.push(`${pid} ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').slice(0, 120)}`);
    } catch {
      /* exited, or not ours to read */
    }
  }
  return found;
}

/** Starts `npm run load` with its temporary files under a directory of its own; resolves once the cloud is up with the limits raised. */
async function startLoad(args: string[], viaNpm: boolean) {
  const tmp = mkdtempSync(join(tmpdir(), 'kmod-load-int-'));
  tmpDirs.push(tmp);
  const command = viaNpm ? ['npm', ['run', 'load', '--', ...args]] : [process.execPath, ['--import', 'tsx', 'scripts/load.ts', ...args]];
  // Its own process group, as a terminal's foreground job is: Ctrl-C signals the whole group.
  const child = spawn(command[0] as string, command[1] as string[], {
    cwd: ROOT,
    env: { ...process.env, TMPDIR: tmp },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const deadline = Date.now() + 150_000;
  let dataDir = '';
  for (;;) {
    if (child.exitCode !== null) throw new Error(`npm run load exited early:\n${out}`);
    if (Date.now() > deadline) throw new Error(`no cloud with raised limits in time:\n${out}`);
    await new Promise((r) => setTimeout(r, 500));
    const dir = readdirSync(tmp).find((d) => d.startsWith('kmod-load-') && existsSync(join(tmp, d, 'cloud.json')));
    if (!dir) continue;
    dataDir = join(tmp, dir);
    const cloud = JSON.parse(readFileSync(join(dataDir, 'cloud.json'), 'utf8')) as { apiUrl: string; tokens: { Admin: string } };
    const limits = await fetch(`${cloud.apiUrl}/api/v1/admin/rate-limits`, { headers: { authorization: `Bearer ${cloud.tokens.Admin}` } })
      .then((r) => (r.ok ? (r.json() as Promise<{ deploymentCreatePerUser: number }>) : undefined))
      .catch(() => undefined);
    if (limits?.deploymentCreatePerUser === 100_000) break;
  }
  expect(processesUsing(dataDir).length).toBeGreaterThan(0);
  return { child, dataDir, exited, output: () => out };
}

async function gone(dataDir: string, ms = 30_000): Promise<string[]> {
  const until = Date.now() + ms;
  let left = processesUsing(dataDir);
  while (left.length && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 500));
    left = processesUsing(dataDir);
  }
  return left;
}

describe('npm run load, interrupted', () => {
  it('Ctrl-C (SIGINT to the foreground group): the limits are put back, the cloud stopped and its data removed; exit 130', async () => {
    const run = await startLoad(['--scenarios', 'reads', '--seconds', '60'], true);
    killGroup(run.child.pid!, 'SIGINT');
    const { code, signal } = await run.exited;
    // npm ends itself by the signal it got at once (a shell shows 130) while the script under it,
    // signalled too, puts things back: wait for the cloud's processes and data to go.
    expect(code === 130 || signal === 'SIGINT', `${code} ${signal} ${run.output()}`).toBe(true);
    expect(await gone(run.dataDir)).toEqual([]);
    const until = Date.now() + 30_000;
    while (existsSync(run.dataDir) && Date.now() < until) await new Promise((r) => setTimeout(r, 250));
    expect(existsSync(run.dataDir), run.output()).toBe(false);
    expect(run.output()).toContain('interrupted (SIGINT)');
    expect(run.output()).toContain('rate limits put back: {"windowSeconds":60,"deploymentCreatePerUser":10,"metricsPerUser":60}');
  }, 240_000);

  it('SIGTERM to the script alone does the same (exit 143); SIGKILL leaves no cloud running either', async () => {
    const run = await startLoad(['--scenarios', 'reads', '--seconds', '60'], false);
    run.child.kill('SIGTERM');
    const { code } = await run.exited;
    expect(code, run.output()).toBe(143);
    expect(run.output()).toContain('rate limits put back: {"windowSeconds":60,"deploymentCreatePerUser":10,"metricsPerUser":60}');
    expect(await gone(run.dataDir)).toEqual([]);
    expect(existsSync(run.dataDir)).toBe(false);

    // Nothing can be put back after SIGKILL, but the cloud sees its stdin end and stops itself.
    const killed = await startLoad(['--scenarios', 'reads', '--seconds', '60'], false);
    killed.child.kill('SIGKILL');
    await killed.exited;
    expect(await gone(killed.dataDir, 60_000)).toEqual([]);
  }, 420_000);
});

describe('npm run load, bad options', () => {
  it.each([
    [['--seconds', 'abc'], '--seconds must be a whole number from 1 to 3600, got "abc"'],
    [['--seconds', '0'], '--seconds must be a whole number'],
    [['--connections=-3'], '--connections must be a whole number'],
    [['--connections', 'NaN'], '--connections must be a whole number'],
    [['--soak-minutes', '1e9'], '--soak-minutes must be a whole number from 1 to 1440'],
    [['--creates', '0'], '--creates must be a whole number'],
    [['--sustained-seconds', '2.5'], '--sustained-seconds must be a whole number'],
    [['--scenarios', 'reads,nope'], 'unknown scenario "nope"'],
    [['--no-such-flag'], "Unknown option '--no-such-flag'"],
  ])('%j is refused with exit 2 before any cloud starts', (args, message) => {
    const tmp = mkdtempSync(join(tmpdir(), 'kmod-load-flags-'));
    tmpDirs.push(tmp);
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/load.ts', ...args], {
      cwd: ROOT,
      env: { ...process.env, TMPDIR: tmp },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toContain(message);
    expect(readdirSync(tmp).filter((d) => d.startsWith('kmod-load-'))).toEqual([]);
  });
});
