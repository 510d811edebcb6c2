/**
 * A rollback that cannot finish leaves the environment Degraded (issue 15, defect 9): a Production
 * canary node stops answering after wave 1, wave 2 fails, the rollback cannot reach that node, so
 * Production runs mixed versions. The deployment ends Failed and its locks are released, but the
 * environment stays marked (cluster view, /metrics, audit) and refuses new deployments of the module
 * (409 EnvironmentDegraded) until the repair: a rollback on demand once the node answers again,
 * which clears the mark (audited). Deployments that do not reach Production are not refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { executionArnOf } from '../../localcloud/stepfunctions.ts';
import { agentVersions, api, startTestCloud, waitApprovingGates, waitForDeployment } from './harness.ts';

let cloud: LocalCloud;

beforeAll(async () => {
  cloud = await startTestCloud({
    fleet: { Development: 1, QA: 1, Staging: 2, Production: 4 },
    // A bake long enough to take a canary node down in it; a short agent timeout for the node that does not answer.
    env: { CANARY_BAKE_SECONDS: '4', AGENT_TIMEOUT_MS: '1500', NODES_PER_BATCH: '2' },
  });
}, 120_000);
afterAll(async () => cloud?.stop());

const until = async (check: () => Promise<boolean> | boolean, what: string, ms = 60_000) => {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};
const deploy = (targetEnvironment: string, version = '1.1.0') =>
  api(cloud, 'POST', '/api/v1/deployments', { token: cloud.tokens.Deployer, body: { moduleName: 'demo-kernel', version, targetEnvironment } });
const cluster = async () => (await api(cloud, 'GET', '/api/v1/clusters/Production', { token: cloud.tokens.Viewer })).body;
const metrics = async () => (await api(cloud, 'GET', '/metrics')).body as string;
const environmentAudit = async () =>
  (await api(cloud, 'GET', `/api/v1/audit?subject=${encodeURIComponent('environment#Production')}&limit=500`, { token: cloud.tokens.Admin })).body
    .items as any[];

describe('a rollback that cannot finish', () => {
  let id: string;
  let stuck: string;

  it('leaves Production marked Degraded: the deployment is Failed, the mark is in the cluster view, /metrics and the audit trail', async () => {
    const r = await deploy('Production');
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    id = r.body.executionId;
    const finished = waitApprovingGates(cloud, id, 180_000);
    // In the first bake, the wave-1 canary node stops answering; the rest of Production cannot load the version.
    const canary = executionArnOf('kmod-Canary', `${id}-Production`);
    const baking = () => {
      try {
        return cloud.sfn.history(canary).some((e) => e.type === 'WaitStateEntered');
      } catch {
        return false; // the canary has not started yet
      }
    };
    await until(baking, 'the first bake', 120_000);
    const onNew = Object.entries(agentVersions(cloud, 'prod')).filter(([, v]) => v === '1.1.0');
    expect(onNew).toHaveLength(1);
    stuck = onNew[0][0];
    expect((await api(cloud, 'PUT', `/_local/fleet/nodes/${stuck}/faults`, { body: { unresponsive: true } })).status).toBe(200);
    for (const n of Object.keys(agentVersions(cloud, 'prod')).filter((n) => n !== stuck)) {
      await api(cloud, 'PUT', `/_local/fleet/nodes/${n}/faults`, { body: { failLoad: true } });
    }

    const d = await finished;
    expect(d.status).toBe('Failed');
    const production = d.stages.find((s: { name: string }) => s.name === 'Production');
    expect(production.status).toBe('Failed');
    expect(production.message).toContain(`rollback FAILED on ${stuck}`);
    expect(production.message).toContain(`Production is Degraded for demo-kernel until ${stuck}`);
    // Mixed: the stuck node still runs the new version, the others the old one.
    const versions = agentVersions(cloud, 'prod');
    expect(versions[stuck]).toBe('1.1.0');
    expect(
      Object.entries(versions)
        .filter(([n]) => n !== stuck)
        .map(([, v]) => v),
    ).toEqual(['1.0.0', '1.0.0', '1.0.0']);

    const c = await cluster();
    expect(c.degraded).toBe(true);
    expect(c.degradedModules['demo-kernel']).toMatchObject({
      status: 'Degraded',
      deploymentId: id,
      version: '1.1.0',
      stuckNodes: [expect.objectContaining({ nodeId: stuck, previousVersion: '1.0.0' })],
      repair: `POST /api/v1/deployments/${id}/rollback`,
    });
    const m = await metrics();
    expect(m).toContain('kmod_degraded_modules{environment="Production"} 1');
    expect(m).toContain('kmod_degraded_modules{environment="Staging"} 0');
    expect(m).toContain(`kmod_environment_degraded{environment="Production",module="demo-kernel",deployment="${id}"} 1`);
    // Marked once, though both the canary's rollback and the pipeline's rolled Production back.
    const marked = (await environmentAudit()).filter((e) => e.action === 'environment.degraded');
    expect(marked).toEqual([
      expect.objectContaining({ actor: 'system:rollback', details: expect.objectContaining({ module: 'demo-kernel', deploymentId: id, stuckNodes: [stuck] }) }),
    ]);
  }, 240_000);

  it('refuses a new deployment through Production with 409 EnvironmentDegraded saying how to repair; one that stops before Production runs', async () => {
    const refused = await deploy('Production');
    expect(refused.status, JSON.stringify(refused.body)).toBe(409);
    expect(refused.body.code).toBe('EnvironmentDegraded');
    expect(refused.body.message).toContain(`the rollback of ${id} could not finish on ${stuck}`);
    expect(refused.body.message).toContain(`POST /api/v1/deployments/${id}/rollback`);
    expect(refused.body.details).toEqual({ environment: 'Production', moduleName: 'demo-kernel', degradedBy: id, stuckNodes: [stuck] });

    // Development is not Degraded: a deployment that stops there is accepted (and its locks do not reach Production).
    const dev = await deploy('Development');
    expect(dev.status, JSON.stringify(dev.body)).toBe(202);
    expect((await waitForDeployment(cloud, dev.body.executionId)).status).toBe('Succeeded');
  }, 120_000);

  it('is repaired by a rollback on demand once the node answers: the mark is cleared (audited), deployments to Production are accepted again', async () => {
    // Still unresponsive: the rollback on demand cannot finish either, and the mark stays.
    const first = await api(cloud, 'POST', `/api/v1/deployments/${id}/rollback`, { token: cloud.tokens.Deployer, body: { reason: 'repair' } });
    expect(first.status, JSON.stringify(first.body)).toBe(202);
    expect(first.body.rollback.environments).toEqual(['Production']);
    await until(
      async () => (await api(cloud, 'GET', `/api/v1/deployments/${id}`, { token: cloud.tokens.Viewer })).body.rollback?.status === 'Failed',
      'the first repair attempt',
    );
    expect((await cluster()).degraded).toBe(true);

    for (const n of Object.keys(agentVersions(cloud, 'prod'))) await api(cloud, 'DELETE', `/_local/fleet/nodes/${n}/faults`);
    const repair = await api(cloud, 'POST', `/api/v1/deployments/${id}/rollback`, { token: cloud.tokens.Deployer, body: { reason: 'node is back' } });
    expect(repair.status, JSON.stringify(repair.body)).toBe(202);
    const get = async () => (await api(cloud, 'GET', `/api/v1/deployments/${id}`, { token: cloud.tokens.Viewer })).body;
    await until(async () => (await get()).rollback?.status !== 'Running', 'the repair', 90_000);
    const d = await get();
    expect([d.status, d.rollback.status], JSON.stringify(d)).toEqual(['RolledBack', 'Succeeded']);
    expect(new Set(Object.values(agentVersions(cloud, 'prod')))).toEqual(new Set(['1.0.0']));

    const c = await cluster();
    expect(c.degraded).toBe(false);
    expect(c.degradedModules).toEqual({});
    expect(await metrics()).toContain('kmod_degraded_modules{environment="Production"} 0');
    expect(await metrics()).not.toContain('kmod_environment_degraded{');
    const repaired = (await environmentAudit()).filter((e) => e.action === 'environment.repaired');
    expect(repaired).toEqual([
      expect.objectContaining({
        actor: expect.not.stringMatching(/^system:/),
        details: expect.objectContaining({ module: 'demo-kernel', deploymentId: id, repairedBy: 'rollback', nodes: [stuck] }),
      }),
    ]);
    const again = await deploy('Production');
    expect(again.status, JSON.stringify(again.body)).toBe(202);
  }, 180_000);
});
