/**
 * Desired state and convergence with real agent processes (`scripts/agent.ts --enrol … --trust-roots`):
 * a node enrolled after a deployment converges to it without a new deployment; a node that missed
 * a deployment converges when it returns; nothing converges while a deployment holds the module's
 * lock; a rollback restores the desired state, and nodes follow it.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { createDevPki } from '../../localcloud/devPki.ts';
import { AgentProcesses } from './agentProcesses.ts';
import { api, startTestCloud, waitApprovingGates, waitForDeployment } from './harness.ts';

/**
 * Short, but not the shortest: a node is Unreachable after 3 missed heartbeats, and on a loaded
 * shared test machine 1 s beats (3 s) are sometimes answered late enough to count as missed.
 */
const HEARTBEAT_SECONDS = '2';
let cloud: LocalCloud;
let token: string;
const agents = new AgentProcesses();
const dirs: Record<string, string> = {};
const ids: Record<string, string> = {};
const deployments: Record<string, string> = {};

beforeAll(async () => {
  // Real agents report the host's load as CPU; on a busy shared machine that is near 100 %.
  cloud = await startTestCloud({
    fleet: { Development: 1, QA: 1, Staging: 2, Production: 1 },
    env: { HEALTH_MAX_CPU_PERCENT: '100', HEALTH_MAX_MEMORY_PERCENT: '100' },
  });
  const t = await api(cloud, 'POST', '/api/v1/enrolment-tokens', { token: cloud.tokens.Admin, body: { environment: 'Development', maxUses: 5 } });
  expect(t.status).toBe(201);
  token = t.body.token;
}, 120_000);

afterAll(async () => {
  await agents.stopAll();
  // The demo workload outlives its agent (a loaded module keeps running): stop what the tests started.
  for (const dir of Object.values(dirs)) {
    const moduleDir = join(dir, 'modules', 'demo-kernel');
    if (!existsSync(moduleDir)) continue;
    for (const v of readdirSync(moduleDir)) {
      const pidFile = join(moduleDir, v, 'run', 'module.pid');
      if (existsSync(pidFile)) killQuietly(Number(readFileSync(pidFile, 'utf8')));
    }
  }
  await cloud?.stop();
}, 120_000);

function killQuietly(pid: number) {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}

/** Start an enrolling agent process that installs for real; resolves with its node id. */
function startAgent(name: string, args: string[], trustRoots = join(cloud.dataDir, 'pki', 'root-ca.pem')): Promise<string> {
  dirs[name] ??= mkdtempSync(join(tmpdir(), `kmod-converge-${name}-`));
  const own = ['--host', '127.0.0.1', '--port', '0', '--heartbeat-seconds', HEARTBEAT_SECONDS, '--data-dir', dirs[name], '--trust-roots', trustRoots];
  return agents.start(name, [...own, ...args]);
}
const stopAgent = (name: string) => agents.stop(name);
const log = (name: string) => agents.output(name);
const current = (name: string) => {
  const link = join(dirs[name], 'modules', 'demo-kernel', 'current');
  return existsSync(link) ? readlinkSync(link) : undefined;
};

async function cluster() {
  const r = await api(cloud, 'GET', '/api/v1/clusters/Development', { token: cloud.tokens.Viewer });
  expect(r.status).toBe(200);
  return r.body;
}
const nodeView = async (nodeId: string) => (await cluster()).nodes.find((n: { nodeId: string }) => n.nodeId === nodeId);

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function request(version: string, targetEnvironment: string, extra: Record<string, unknown> = {}) {
  const r = await api(cloud, 'POST', '/api/v1/deployments', {
    token: cloud.tokens.Deployer,
    body: { moduleName: 'demo-kernel', version, targetEnvironment, ...extra },
  });
  expect(r.status, JSON.stringify(r.body)).toBe(202);
  return r.body.executionId as string;
}

const auditActions = async (subject: string) => {
  const r = await api(cloud, 'GET', `/api/v1/audit?subject=${encodeURIComponent(subject)}`, { token: cloud.tokens.Admin });
  expect(r.status).toBe(200);
  return r.body.items as { action: string; actor: string; details: Record<string, any> }[];
};

/** Wait until the node has sent `n` more heartbeats (its lastSeenAt moved n times). */
async function heartbeats(nodeId: string, n: number) {
  let last = (await nodeView(nodeId))?.lastSeenAt;
  for (let i = 0; i < n; i++) {
    last = await until(`a heartbeat of ${nodeId}`, async () => {
      const seen = (await nodeView(nodeId))?.lastSeenAt;
      return seen !== last && seen;
    });
  }
}

describe('desired state and convergence', () => {
  it('records the desired state when a stage succeeds, audited', async () => {
    deployments.first = await request('1.1.0', 'Development');
    const d = await waitForDeployment(cloud, deployments.first);
    expect(d.status, JSON.stringify(d.failure)).toBe('Succeeded');
    const c = await cluster();
    expect(c.desiredModules['demo-kernel']).toMatchObject({
      version: '1.1.0',
      deploymentId: deployments.first,
      revision: 1,
      setBy: 'deployment',
      // No desired state was recorded before: what every node ran is what a rollback would return to.
      previous: { version: '1.0.0', deploymentId: null },
    });
    const trail = await auditActions('environment#Development');
    expect(trail).toEqual([
      expect.objectContaining({
        action: 'environment.desired-state.changed',
        actor: 'system:pipeline',
        details: expect.objectContaining({
          module: 'demo-kernel',
          cause: 'deployment',
          deploymentId: deployments.first,
          to: expect.objectContaining({ version: '1.1.0' }),
        }),
      }),
    ]);
  }, 120_000);

  it('a new agent enrolled after the deployment converges to 1.1.0 without a new deployment, visible and audited', async () => {
    const started = Date.now();
    ids.late = await startAgent('late', ['--api', cloud.apiUrl, '--enrol', token]);
    await until('the late node to converge', async () => current('late') === '1.1.0' && (await nodeView(ids.late))?.convergence?.state === 'Converged');
    const tookMs = Date.now() - started;
    expect(log('late')).toMatch(new RegExp(`converging demo-kernel none → 1\\.1\\.0 \\(converge:${deployments.first}:r1\\)`));
    expect(log('late')).toMatch(/\[demo-kernel@1\.1\.0 load\] started pid \d+/);
    expect(log('late')).toContain('converged demo-kernel to 1.1.0');
    const view = await nodeView(ids.late);
    expect(view).toMatchObject({
      status: 'Online',
      modules: { 'demo-kernel': { version: '1.1.0' } },
      reportedModules: { 'demo-kernel': { version: '1.1.0' } },
    });
    expect(view.convergence).toEqual({ state: 'Converged', pending: [] });
    const c = await cluster();
    expect(c.moduleVersions['demo-kernel']).toEqual({ '1.1.0': 2 });
    expect(c.convergingNodes).toBe(0);
    // No deployment was made for it.
    const list = await api(cloud, 'GET', '/api/v1/deployments?moduleName=demo-kernel', { token: cloud.tokens.Viewer });
    expect(list.body.items).toHaveLength(1);
    const trail = await auditActions(`node#${ids.late}`);
    const started_ = trail.filter((e) => e.action === 'node.convergence.started');
    expect(started_).toEqual([
      expect.objectContaining({
        actor: 'system:convergence',
        details: expect.objectContaining({ module: 'demo-kernel', from: null, to: '1.1.0', commandId: `converge:${deployments.first}:r1` }),
      }),
    ]);
    expect(trail.filter((e) => e.action === 'node.converged')).toEqual([expect.objectContaining({ details: expect.objectContaining({ to: '1.1.0' }) })]);
    console.log(`late node converged ${tookMs} ms after its agent was started (enrolment, download, signature check, install, load hook)`);
  }, 120_000);

  it('a node whose own trust roots refuse the module does not converge: nothing changes on it, the reason is visible and audited', async () => {
    const otherRoots = join(mkdtempSync(join(tmpdir(), 'kmod-other-roots-')), 'root-ca.pem');
    writeFileSync(otherRoots, (await createDevPki({ commonName: 'Not Our Signer' })).rootCertPem);
    ids.foreign = await startAgent('foreign', ['--api', cloud.apiUrl, '--enrol', token], otherRoots);
    const view = await until('the refusal to be reported', async () => {
      const v = await nodeView(ids.foreign);
      return v?.convergence?.pending?.[0]?.lastError && v;
    });
    expect(view.convergence).toMatchObject({
      state: 'Converging',
      pending: [
        { module: 'demo-kernel', from: null, to: '1.1.0', lastError: { code: 'SignatureInvalid', message: expect.stringContaining('signature refused') } },
      ],
    });
    expect(current('foreign')).toBeUndefined();
    expect(log('foreign')).toMatch(/convergence of demo-kernel none → 1\.1\.0 \(converge:\S+\) failed \(SignatureInvalid\)/);
    const failed = (await auditActions(`node#${ids.foreign}`)).filter((e) => e.action === 'node.convergence.failed');
    expect(failed).toEqual([expect.objectContaining({ details: expect.objectContaining({ code: 'SignatureInvalid', to: '1.1.0' }) })]);
    // Out of the way of the deployments below, which would (rightly) fail on it too.
    await stopAgent('foreign');
    expect((await api(cloud, 'DELETE', `/api/v1/nodes/${ids.foreign}`, { token: cloud.tokens.Admin })).status).toBe(200);
  }, 120_000);

  it('a node that missed a deployment (stopped, skipped as unreachable) converges when it returns', async () => {
    await stopAgent('late');
    await until('the late node to be Unreachable', async () => (await nodeView(ids.late))?.status === 'Unreachable', 20_000);
    deployments.skip = await request('1.0.0', 'Development', { unreachableNodes: 'skip' });
    const d = await waitForDeployment(cloud, deployments.skip);
    expect(d.status, JSON.stringify(d.failure)).toBe('Succeeded');
    expect(d.stages.find((s: { name: string }) => s.name === 'Development').details.skippedNodes).toEqual([ids.late]);
    expect(current('late')).toBe('1.1.0');
    expect((await cluster()).desiredModules['demo-kernel']).toMatchObject({ version: '1.0.0', deploymentId: deployments.skip, revision: 2 });

    expect(await startAgent('late', [])).toBe(ids.late);
    await until('the returning node to converge', async () => current('late') === '1.0.0' && (await nodeView(ids.late))?.convergence?.state === 'Converged');
    expect(log('late')).toMatch(/\[demo-kernel@1\.1\.0 unload\] stopped pid \d+/);
    expect(log('late')).toContain(`converging demo-kernel 1.1.0 → 1.0.0 (converge:${deployments.skip}:r2)`);
    const converged = (await auditActions(`node#${ids.late}`)).filter((e) => e.action === 'node.converged');
    expect(converged.map((e) => [e.details.from, e.details.to])).toEqual([
      [null, '1.1.0'],
      ['1.1.0', '1.0.0'],
    ]);
  }, 120_000);

  it('converges nothing while a deployment holds the module’s lock (waiting at an approval gate); the rollback restores the desired state', async () => {
    deployments.gated = await request('1.1.0', 'Staging');
    const waiting = await waitForDeployment(cloud, deployments.gated, ['WaitingForApproval', 'Succeeded', 'Failed', 'RolledBack']);
    expect(waiting.status, JSON.stringify(waiting.failure)).toBe('WaitingForApproval');
    // Development has been promoted: its desired state names 1.1.0, and the returning node runs it.
    expect((await cluster()).desiredModules['demo-kernel']).toMatchObject({ version: '1.1.0', deploymentId: deployments.gated, revision: 3 });
    expect(current('late')).toBe('1.1.0');

    // A node joining now must wait: the deployment still holds demo-kernel's lock in Development.
    ids.gate = await startAgent('gate', ['--api', cloud.apiUrl, '--enrol', token]);
    await heartbeats(ids.gate, 3);
    expect(current('gate')).toBeUndefined();
    expect(log('gate')).not.toContain('converging');
    const view = await nodeView(ids.gate);
    expect(view.convergence).toEqual({
      state: 'Converging',
      pending: [{ module: 'demo-kernel', from: null, to: '1.1.0', desiredBy: deployments.gated, waitingFor: deployments.gated }],
    });
    expect(view.health.status).toBe('healthy');
    const c = await cluster();
    expect(c.convergingNodes).toBe(1);
    // The agent says healthy, but a converging node is not counted healthy.
    expect(c.healthyNodes).toBe(c.nodeCount - 1);
    expect((await auditActions(`node#${ids.gate}`)).map((e) => e.action)).not.toContain('node.convergence.started');

    const rejected = await api(cloud, 'POST', `/api/v1/approvals/deployments/${deployments.gated}/reject`, {
      token: cloud.tokens.Approver,
      body: { reason: 'not this week' },
    });
    expect(rejected.status, JSON.stringify(rejected.body)).toBe(200);
    const d = await waitForDeployment(cloud, deployments.gated);
    expect(d.status).toBe('Failed');
    const dev = d.stages.find((s: { name: string }) => s.name === 'Development');
    expect(dev).toMatchObject({ status: 'RolledBack', message: expect.stringContaining('desired state back to demo-kernel@1.0.0') });
    // The deployment's rollback put the late node back itself: the view says so at once, not only after its next heartbeat.
    expect((await nodeView(ids.late)).convergence?.state ?? 'Converged').not.toBe('Converging');
    // Development's desired state is what it was before the deployment.
    expect((await cluster()).desiredModules['demo-kernel']).toMatchObject({
      version: '1.0.0',
      deploymentId: deployments.skip,
      revision: 4,
      setBy: 'rollback',
      rolledBack: deployments.gated,
    });
    const envTrail = (await auditActions('environment#Development')).filter((e) => e.details.deploymentId === deployments.gated);
    expect(envTrail.map((e) => [e.details.cause, e.details.to?.version])).toEqual([
      ['deployment', '1.1.0'],
      ['rollback', '1.0.0'],
    ]);

    // With the lock released, the waiting node converges to the restored state; the other was rolled back by the deployment itself.
    await until('the waiting node to converge', async () => current('gate') === '1.0.0' && (await nodeView(ids.gate))?.convergence?.state === 'Converged');
    expect(log('gate')).toContain(`converging demo-kernel none → 1.0.0 (converge:${deployments.skip}:r4)`);
    expect(current('late')).toBe('1.0.0');
    const c2 = await cluster();
    expect(c2.convergingNodes).toBe(0);
    expect(c2.moduleVersions['demo-kernel']).toEqual({ '1.0.0': 3 });
  }, 180_000);

  it('a rollback on demand restores the desired state, and a node that was away converges to it', async () => {
    await stopAgent('gate');
    await until('the gate node to be Unreachable', async () => (await nodeView(ids.gate))?.status === 'Unreachable', 20_000);
    expect((await nodeView(ids.late)).status).toBe('Online');
    deployments.again = await request('1.1.0', 'Development', { unreachableNodes: 'skip' });
    const again = await waitForDeployment(cloud, deployments.again);
    expect(again.status).toBe('Succeeded');
    expect(current('late'), `${JSON.stringify(again.stages)}\n${log('late')}`).toBe('1.1.0');
    expect(current('gate')).toBe('1.0.0');
    const rb = await api(cloud, 'POST', `/api/v1/deployments/${deployments.again}/rollback`, { token: cloud.tokens.Deployer, body: { reason: 'test' } });
    expect(rb.status, JSON.stringify(rb.body)).toBe(202);
    await waitForDeployment(cloud, deployments.again, ['RolledBack']);
    expect((await cluster()).desiredModules['demo-kernel']).toMatchObject({ version: '1.0.0', setBy: 'rollback', rolledBack: deployments.again });
    const restored = (await auditActions('environment#Development')).filter(
      (e) => e.details.deploymentId === deployments.again && e.details.cause === 'rollback',
    );
    expect(restored).toEqual([expect.objectContaining({ actor: 'dev-deployer' })]);
    expect(current('late')).toBe('1.0.0');
    // The stopped node never ran 1.1.0: on its return it has nothing to do.
    await startAgent('gate', []);
    await heartbeats(ids.gate, 2);
    expect((await nodeView(ids.gate)).convergence).toEqual({ state: 'Converged', pending: [] });
    expect(log('gate')).not.toContain('converging');
  }, 180_000);

  it('records a blue-green environment’s desired state for the colour that now serves it', async () => {
    const id = await request('1.1.0', 'Staging');
    const d = await waitApprovingGates(cloud, id);
    expect(d.status, JSON.stringify(d.failure)).toBe('Succeeded');
    const staging = await api(cloud, 'GET', '/api/v1/clusters/Staging', { token: cloud.tokens.Viewer });
    expect(staging.body.activeColour).toBe('green');
    // What served before (the blue colour, all on 1.0.0) is what a rollback returns to; blue stays the standby.
    expect(staging.body.desiredModules['demo-kernel']).toMatchObject({
      version: '1.1.0',
      colour: 'green',
      deploymentId: id,
      previous: { version: '1.0.0', deploymentId: null, colour: 'blue' },
    });
  }, 180_000);
});
