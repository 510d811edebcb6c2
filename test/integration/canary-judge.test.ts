/**
 * The canary judge on the local cloud (issue 10): a node that is an outlier among healthy canary
 * nodes is named and rolls the canary back; 10 % slow requests fail the statistical judge with the
 * p-value shown; the recorded samples can be rejudged under other settings without touching a node.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { agentVersions, api, expectDocumented, startTestCloud, waitApprovingGates } from './harness.ts';

let cloud: LocalCloud;

// Long waits shrunk, logic intact: a 1 s canary bake, a 1.5 s agent timeout.
beforeAll(async () => {
  // The product's default confidence (the suite's harness judges at 0.9999).
  cloud = await startTestCloud({
    env: { CANARY_CONFIDENCE: '0.99', CANARY_BAKE_SECONDS: '1', AGENT_TIMEOUT_MS: '1500', NODES_PER_BATCH: '5', SMOKE_TEST_TIMEOUT_SECONDS: '20' },
  });
});
afterAll(async () => {
  await cloud?.stop();
});
afterEach(() => {
  for (const n of cloud.fleet.nodes.values()) n.agent.setFaults({});
});

async function deploy(version = '1.1.0') {
  const r = await api(cloud, 'POST', '/api/v1/deployments', {
    token: cloud.tokens.Deployer,
    body: { moduleName: 'demo-kernel', version, targetEnvironment: 'Production' },
  });
  expect(r.status, JSON.stringify(r.body)).toBe(202);
  return r.body.executionId as string;
}

const production = (d: any) => d.stages.find((s: { name: string }) => s.name === 'Production');
const faults = (nodeId: string, body: unknown) => api(cloud, 'PUT', `/_local/fleet/nodes/${nodeId}/faults`, { body });

describe('the canary judge', () => {
  let slowCanary: string;

  it('one canary node at 5× baseline latency among healthy ones fails the wave, named as an outlier; every canary node rolls back', async () => {
    // Waves of 10/30/50/100 % of 20 nodes: prod-01..02, then prod-03..06. prod-04 is one of six canary nodes in wave 2.
    expect((await faults('prod-04', { degrade: { latencyMs: 80 } })).status).toBe(200);
    const d = await waitApprovingGates(cloud, await deploy('1.1.0'));
    expect(d.status).toBe('RolledBack');
    expect(d.failure).toMatchObject({ stage: 'Production', code: 'CanaryAnalysisFailed' });
    const prod = production(d);
    expect(prod.details.wave1).toMatchObject({ passed: true, nodes: 2, outliers: [] });
    expect(prod.details.wave2).toMatchObject({ passed: false, nodes: 6 });
    expect(prod.details.wave2.outliers.map((o: { nodeId: string }) => o.nodeId)).toEqual(['prod-04']);
    expect(prod.message).toMatch(
      /canary wave 2 \(30% of nodes, 6 nodes\) failed analysis against the baseline: .*outlier node prod-04: latency [\d.]+ ms → [\d.]+ ms \(\+[\d.]+%, limit \+100%\)/,
    );
    expect(prod).toMatchObject({ status: 'RolledBack', nodesRolledBack: 6 });
    expect(Object.values(agentVersions(cloud, 'prod'))).toEqual(new Array(20).fill('1.0.0'));
    // Each judged wave is counted once, by verdict (Prometheus here; CloudWatch EMF on AWS).
    const metrics = await fetch(`${cloud.apiUrl}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/^kmod_canary_verdicts_total\{environment="Production",verdict="passed"\} 1$/m);
    expect(metrics).toMatch(/^kmod_canary_verdicts_total\{environment="Production",verdict="failed"\} 1$/m);
  });

  it('10 % of requests on the canary nodes 100 ms slower: the averages stay within limits, the rank test fails wave 1 with its p-value', async () => {
    // The fault is refused half-given (zod at the edge), then set on every Production node: it applies once a node runs the new version.
    const half = await faults('prod-01', { degrade: { slowRequestPercent: 10 } });
    expect(half.status).toBe(400);
    expect(half.body).toMatchObject({ code: 'ValidationError', message: expect.stringContaining('slowRequestPercent and slowRequestMs go together') });
    for (let i = 1; i <= 20; i++)
      expect((await faults(`prod-${String(i).padStart(2, '0')}`, { degrade: { slowRequestPercent: 10, slowRequestMs: 100 } })).status).toBe(200);
    slowCanary = await deploy('1.1.0');
    const d = await waitApprovingGates(cloud, slowCanary);
    expect(d.status).toBe('RolledBack');
    const wave1 = production(d).details.wave1;
    expect(wave1.passed).toBe(false);
    const latency = wave1.metrics.find((m: { metric: string }) => m.metric === 'latencyMs');
    expect(latency).toMatchObject({ unit: 'request', test: 'mann-whitney', verdict: 'fail', samples: { baseline: 20_000, canary: 2000 } });
    expect(latency.pValue).toBeLessThan(latency.alpha);
    expect(latency.alpha).toBeCloseTo(0.0025, 10);
    expect(latency.changePercent).toBeLessThan(100); // the threshold alone would have passed it
    expect(wave1.checks.find((c: { metric: string }) => c.metric === 'latencyMs').failed).toBe(false);
    for (const m of wave1.metrics.filter((m: { metric: string }) => m.metric !== 'latencyMs')) expect(m.verdict, m.reason).toBe('pass');
    expect(production(d).message).toMatch(/latency worse by Mann-Whitney U: p=(<1e-100|[\d.e+-]+) < 0\.0025, effect size [\d.]+/);
    console.log(`10 % slow requests: ${latency.reason}`);
  });

  it('rejudge answers what the recorded samples give under other settings, changes nothing, and is audited', async () => {
    const before = (await api(cloud, 'GET', `/api/v1/deployments/${slowCanary}`, { token: cloud.tokens.Viewer })).body;
    const fleetBefore = agentVersions(cloud, 'prod');
    // Under the recorded settings the verdict is the same.
    const same = await api(cloud, 'POST', `/api/v1/deployments/${slowCanary}/canary/rejudge`, { token: cloud.tokens.Deployer, body: {} });
    expectDocumented('POST /api/v1/deployments/{executionId}/canary/rejudge', same);
    expect(same.body).toMatchObject({ executionId: slowCanary, environment: 'Production', dryRun: true, settings: { confidence: 0.99 } });
    expect(same.body.waves).toHaveLength(1);
    expect(same.body.waves[0]).toMatchObject({ wave: 1, passed: false, recorded: { passed: false } });
    expect(same.body.waves[0].metrics.find((m: { metric: string }) => m.metric === 'latencyMs').pValue).toBe(
      before.stages.find((s: { name: string }) => s.name === 'Production').details.wave1.metrics.find((m: { metric: string }) => m.metric === 'latencyMs')
        .pValue,
    );
    // A mean latency shift below 50 ms no longer counts: the same samples pass.
    const lenient = await api(cloud, 'POST', `/api/v1/deployments/${slowCanary}/canary/rejudge`, {
      token: cloud.tokens.Admin,
      body: { confidence: 0.999, minimumDeltas: { latencyMs: 50 } },
    });
    expectDocumented('POST /api/v1/deployments/{executionId}/canary/rejudge', lenient);
    expect(lenient.body.settings).toMatchObject({ confidence: 0.999, minimumDeltas: { latencyMs: 50, cpuPercent: 5 } });
    expect(lenient.body.waves[0]).toMatchObject({ wave: 1, passed: true, recorded: { passed: false } });
    // Nothing changed: the deployment record and every node.
    const after = (await api(cloud, 'GET', `/api/v1/deployments/${slowCanary}`, { token: cloud.tokens.Viewer })).body;
    expect(after).toEqual(before);
    expect(agentVersions(cloud, 'prod')).toEqual(fleetBefore);
    // Audited, with who asked and the settings.
    const auditItems = (await api(cloud, 'GET', `/api/v1/audit?deploymentId=${slowCanary}&limit=500`, { token: cloud.tokens.Admin })).body.items as any[];
    const rejudged = auditItems.filter((e) => e.action === 'canary.rejudged');
    expect(rejudged).toHaveLength(2);
    expect(rejudged.map((e) => e.details.waves[0].passed).sort()).toEqual([false, true]);
    expect(rejudged.find((e) => e.details.waves[0].passed).details.settings.minimumDeltas.latencyMs).toBe(50);
  });

  it('rejudge refuses: unknown deployment 404, no canary samples 409, a bad body 400, a Viewer 403 — all JSON', async () => {
    const missing = await api(cloud, 'POST', '/api/v1/deployments/dep-000000000-000000000000/canary/rejudge', { token: cloud.tokens.Deployer, body: {} });
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ code: 'NotFound', message: expect.stringContaining('dep-000000000-000000000000') });
    const dev = await api(cloud, 'POST', '/api/v1/deployments', {
      token: cloud.tokens.Deployer,
      body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Development' },
    });
    const devDone = await waitApprovingGates(cloud, dev.body.executionId);
    expect(devDone.status).toBe('Succeeded');
    const none = await api(cloud, 'POST', `/api/v1/deployments/${dev.body.executionId}/canary/rejudge`, { token: cloud.tokens.Deployer, body: {} });
    expect(none.status).toBe(409);
    expect(none.body).toMatchObject({ code: 'NoCanaryStage' });
    const bad = await api(cloud, 'POST', `/api/v1/deployments/${slowCanary}/canary/rejudge`, {
      token: cloud.tokens.Deployer,
      body: { confidence: 2, thresholds: { latency: 5 } },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe('ValidationError');
    expect(bad.body.message).toMatch(/confidence/);
    const viewer = await api(cloud, 'POST', `/api/v1/deployments/${slowCanary}/canary/rejudge`, { token: cloud.tokens.Viewer, body: {} });
    expect(viewer.status).toBe(403);
  });
});
