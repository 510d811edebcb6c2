/**
 * `npm start` stopped with SIGTERM (what `kill`, `timeout`, systemd and CI cancellations send to
 * npm, not to the whole process group) stops the local cloud. Before: npm passed the signal to the
 * `sh -c` it runs scripts in, the shell died, and the cloud (Node and DynamoDB Local's JVM) ran on
 * orphaned, still serving. The scripts now `exec` their command, so npm's child is the cloud itself.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dataDir = mkdtempSync(join(tmpdir(), 'kmod-npm-signals-'));
let groupLeader: number | undefined;

afterAll(() => {
  if (groupLeader)
    try {
      process.kill(-groupLeader, 'SIGKILL');
    } catch {
      /* gone */
    }
  rmSync(dataDir, { recursive: true, force: true });
});

function processesUsing(dir: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (`${readFileSync(`/proc/${pid}/cmdline`, 'utf8')}\0${readFileSync(`/proc/${pid}/environ`, 'utf8')}`.includes(dir)) found.push(pid);
    } catch {
      /* exited, or not ours to read */
    }
  }
  return found;
}

describe('npm start and signals', () => {
  it('SIGTERM to npm itself stops the local cloud: no Node or Java process of it is left', async () => {
    const npm = spawn('npm', ['start'], {
      cwd: ROOT,
      env: { ...process.env, PORT: '0', KMOD_DATA_DIR: dataDir },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    groupLeader = npm.pid;
    let out = '';
    npm.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    npm.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const deadline = Date.now() + 150_000;
    while (!out.includes('local cloud is up')) {
      if (npm.exitCode !== null || Date.now() > deadline) throw new Error(`npm start did not come up:\n${out}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(processesUsing(dataDir).length).toBeGreaterThanOrEqual(2);
    npm.kill('SIGTERM');
    const until = Date.now() + 30_000;
    let left = processesUsing(dataDir);
    while (left.length && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 250));
      left = processesUsing(dataDir);
    }
    expect(left, out).toEqual([]);
    expect(out).toContain('stopping (SIGTERM)');
  }, 240_000);
});
