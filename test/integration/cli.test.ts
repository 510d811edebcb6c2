/**
 * The `kmod` CLI against a real local cloud (issue 11 item 3, docs/adr/0026-kmod-cli.md): `npx kmod`
 * runs as a child process, reading the cloud's cloud.json. A Development deployment watched to
 * Succeeded exits 0; one that rolls back (a node fails to load the module) exits 1; a running
 * Production deployment cancelled with `kmod cancel` ends Cancelled, every node back on its
 * previous version, and `kmod get --watch` of it exits 3; usage errors exit 2.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalCloud, ROOT } from '../../localcloud/cloud.ts';
import { agentVersions, api, startTestCloud, waitForDeployment } from './harness.ts';

let cloud: LocalCloud;
const cloudFile = join(mkdtempSync(join(tmpdir(), 'kmod-cli-')), 'cloud.json');
const children = new Set<ChildProcess>();

interface Result {
  code: number | null;
  out: string;
  err: string;
}

/** Start `npx kmod …` in the repository, as a person would; `done` resolves when it exits. */
function kmod(args: string[]): { child: ChildProcess; done: Promise<Result>; out: () => string } {
  const child = spawn('npx', ['kmod', ...args], {
    cwd: ROOT,
    detached: true,
    env: { ...process.env, KMOD_CLOUD_FILE: cloudFile, KMOD_API_URL: '', KMOD_TOKEN: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const done = new Promise<Result>((resolve) =>
    child.once('close', (code) => {
      children.delete(child);
      resolve({ code, out, err: err.replace(/^npm warn .*\n|^}\n/gm, '') });
    }),
  );
  return { child, done, out: () => out };
}

const until = async (check: () => Promise<boolean> | boolean, what: string, ms = 90_000) => {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
};

beforeAll(async () => {
  cloud = await startTestCloud({
    cloudFile,
    fleet: { Development: 2, QA: 2, Staging: 2, Production: 6 },
    // Each canary wave bakes this long unless promoted: long enough to cancel in.
    env: { CANARY_BAKE_SECONDS: '20', CANARY_POLL_SECONDS: '1', AGENT_TIMEOUT_MS: '8000', CANCEL_SETTLE_WAIT_MS: '30000' },
  });
}, 180_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) process.kill(-c.pid!, 'SIGKILL');
  await cloud?.stop();
});

describe('kmod', () => {
  it('usage errors exit 2 and say what is wrong', async () => {
    const unknown = await kmod(['frobnicate']).done;
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain("unknown command 'frobnicate'");
    const noEnv = await kmod(['deploy', 'demo-kernel@1.1.0']).done;
    expect(noEnv.code).toBe(2);
    expect(noEnv.err).toContain("required option '--to <environment>' not specified");
  }, 60_000);

  it('deploy demo-kernel@1.1.0 --to Development --watch prints progress and exits 0', async () => {
    const r = await kmod(['deploy', 'demo-kernel@1.1.0', '--to', 'Development', '--watch']).done;
    expect(r.code, r.out + r.err).toBe(0);
    const id = /deployment (dep-\S+) requested/.exec(r.err)![1];
    // Followed over the local cloud's WebSocket API (wsUrl of cloud.json), with nothing to fall back from.
    expect(r.err).toContain(`following live events from ${cloud.wsUrl}`);
    expect(r.err).not.toContain('polling');
    expect(r.out).toMatch(new RegExp(`${id} {2}demo-kernel@1\\.1\\.0 → Development {2}Running`));
    expect(r.out).toMatch(/Development +Running +\[Direct\]/);
    expect(r.out).toMatch(/Development +Succeeded +\[Direct\] +nodes 2\/2 +batches \d+\/\d+/);
    expect(r.out).toMatch(new RegExp(`\\d ${id} {2}demo-kernel@1\\.1\\.0 → Development {2}Succeeded\n`));
    expect((await api(cloud, 'GET', `/api/v1/deployments/${id}`, { token: cloud.tokens.Viewer })).body.status).toBe('Succeeded');
    expect(Object.values(agentVersions(cloud, 'dev'))).toEqual(['1.1.0', '1.1.0']);
    // The same deployment, read back: get (text and --json) and list.
    const get = await kmod(['get', id, '--json']).done;
    expect(get.code).toBe(0);
    expect(JSON.parse(get.out)).toMatchObject({ executionId: id, status: 'Succeeded' });
    const list = await kmod(['list']).done;
    expect(list.out).toMatch(new RegExp(`${id} +demo-kernel@1\\.1\\.0 +Development +Succeeded`));
  }, 180_000);

  it('a deployment that rolls back exits 1', async () => {
    cloud.fleet.inject('qa-02', { failLoad: true });
    try {
      const r = await kmod(['deploy', 'demo-kernel@1.1.0', '--to', 'QA', '--watch']).done;
      expect(r.code, r.out + r.err).toBe(1);
      expect(r.out).toMatch(/QA +RolledBack +\[Rolling\] +nodes 1\/2 \(1 failed\)/);
      expect(r.out).toMatch(/ demo-kernel@1\.1\.0 → QA {2}RolledBack\n/);
      expect(r.out).toContain('failure: batch 0: 1 of 2 nodes failed to deploy demo-kernel@1.1.0');
    } finally {
      cloud.fleet.inject('qa-02', {});
    }
  }, 240_000);

  it('kmod cancel of a running Production deployment ends Cancelled, every node back; get --watch of it exits 3', async () => {
    const before = { qa: agentVersions(cloud, 'qa'), stg: agentVersions(cloud, 'stg'), prod: agentVersions(cloud, 'prod') };
    const started = await kmod(['deploy', 'demo-kernel@1.1.0', '--to', 'Production']).done;
    expect(started.code, started.err).toBe(0);
    const id = started.out.trim();
    expect(id).toMatch(/^dep-/);
    const watcher = kmod(['get', id, '--watch']);
    // Approve each gate on the way with the CLI (as the dev Approver), until the Production canary runs.
    await until(
      async () => {
        const d = await waitForDeployment(cloud, id, ['WaitingForApproval', 'Running', 'Succeeded', 'Failed', 'RolledBack', 'Cancelled'], 120_000);
        if (d.status === 'WaitingForApproval') {
          // The watcher (polling once a second) shows the gate and who may decide it.
          await until(() => /approval Pending — may approve: \S/.test(watcher.out()), 'the watcher to show the gate', 15_000);
          const a = await kmod(['approve', id, '--reason', 'go']).done;
          expect(a.code, a.err).toBe(0);
          return false;
        }
        if (d.status !== 'Running') throw new Error(`deployment ended ${d.status} before Production ran`);
        return d.stages.find((s: any) => s.name === 'Production')?.status === 'Running';
      },
      'the Production canary to run',
      180_000,
    );
    const c = await kmod(['cancel', id, '--reason', 'wrong version']).done;
    expect(c.code, c.err).toBe(0);
    expect(c.out).toContain(`${id}: cancel accepted`);
    const w = await watcher.done;
    expect(w.code, w.out + w.err).toBe(3);
    expect(w.out).toMatch(/ demo-kernel@1\.1\.0 → Production {2}Cancelled\n/);
    await until(
      async () => (await api(cloud, 'GET', `/api/v1/deployments/${id}`, { token: cloud.tokens.Viewer })).body.rollback?.status === 'Succeeded',
      'rollback',
    );
    expect({ qa: agentVersions(cloud, 'qa'), stg: agentVersions(cloud, 'stg'), prod: agentVersions(cloud, 'prod') }).toEqual(before);
  }, 420_000);
});
