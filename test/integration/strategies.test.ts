import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { agentVersions, api, startTestCloud, waitApprovingGates, waitForDeployment } from './harness.ts';
import type { LocalCloud } from '../../localcloud/cloud.ts';

let cloud: LocalCloud;

// Long waits shrunk, logic intact: a 1 s canary bake, a 1.5 s agent timeout, 3 nodes per batch.
beforeAll(async () => {
  cloud = await startTestCloud({ env: { CANARY_BAKE_SECONDS: '1', AGENT_TIMEOUT_MS: '1500', NODES_PER_BATCH: '3', SMOKE_TEST_TIMEOUT_SECONDS: '20' } });
});
afterAll(async () => {
  await cloud?.stop();
});
afterEach(() => {
  for (const n of cloud.fleet.nodes.values()) n.agent.setFaults({});
});

const PREFIXES = { Development: 'dev', QA: 'qa', Staging: 'stg', Production: 'prod' } as const;

async function deploy(targetEnvironment: string, version = '1.1.0') {
  const r = await api(cloud, 'POST', '/api/v1/deployments', { token: cloud.tokens.Deployer, body: { moduleName: 'demo-kernel', version, targetEnvironment } });
  expect(r.status, JSON.stringify(r.body)).toBe(202);
  return r.body.executionId as string;
}

const stage = (d: any, name: string) => d.stages.find((s: { name: string }) => s.name === name);

function expectFleetOn(version: string, envs: (keyof typeof PREFIXES)[]) {
  for (const env of envs) {
    const versions = Object.values(agentVersions(cloud, PREFIXES[env]));
    expect(versions.length).toBeGreaterThan(0);
    expect(versions, env).toEqual(versions.map(() => version));
  }
}

async function activeColour() {
  const r = await api(cloud, 'GET', '/api/v1/clusters/Staging', { token: cloud.tokens.Viewer });
  return r.body.activeColour as string;
}

describe('failure modes end Failed or RolledBack with every touched node back', () => {
  it('Direct: an unreachable node times out and the environment rolls back', async () => {
    cloud.fleet.inject('dev-03', { unresponsive: true });
    const d = await waitForDeployment(cloud, await deploy('Development'));
    expect(d.status).toBe('RolledBack');
    expect(stage(d, 'Development').message).toMatch(/dev-03 is unreachable: did not answer within 1500 ms/);
    cloud.fleet.inject('dev-03', {});
    expectFleetOn('1.0.0', ['Development']);
  });

  it('Rolling: a node that fails to load in the second batch rolls back the first batch too, and stops the rollout', async () => {
    cloud.fleet.inject('qa-03', { failLoad: true });
    const d = await waitForDeployment(cloud, await deploy('QA'));
    expect(d.status).toBe('RolledBack');
    // Batches of 2: qa-01+qa-02 succeed, then qa-03 fails beside qa-04; qa-05 is never touched.
    expect(stage(d, 'QA')).toMatchObject({ status: 'RolledBack', strategy: 'Rolling', nodesTotal: 5, nodesDeployed: 3, nodesFailed: 1, nodesRolledBack: 3 });
    expect(stage(d, 'QA').message).toContain('qa-03');
    const audit = await api(cloud, 'GET', `/api/v1/deployments/${d.executionId}`, { token: cloud.tokens.Viewer });
    expect(audit.status).toBe(200);
    // Development had succeeded; it is rolled back too, so the failed deployment leaves nothing changed.
    expect(stage(d, 'Development')).toMatchObject({ status: 'RolledBack', nodesRolledBack: 3 });
    expectFleetOn('1.0.0', ['Development', 'QA']);
  });

  it('Rolling: a node that turns unhealthy after loading fails the health check and rolls back', async () => {
    cloud.fleet.inject('qa-02', { unhealthyAfterLoad: true });
    const d = await waitForDeployment(cloud, await deploy('QA'));
    expect(d.status).toBe('RolledBack');
    expect(d.failure).toMatchObject({ stage: 'QA', code: 'UnhealthyNodes' });
    expect(stage(d, 'QA').message).toMatch(/qa-02: module demo-kernel crashed after loading/);
    expect(stage(d, 'QA').nodesDeployed).toBe(2); // stopped after the first batch
    expectFleetOn('1.0.0', ['Development', 'QA']);
  });

  it('Blue-Green: a failed smoke test leaves traffic on the live colour and restores the idle one', async () => {
    const live = await activeColour();
    const idlePrefix = live === 'blue' ? ['stg-06', 'stg-07', 'stg-08', 'stg-09', 'stg-10'] : ['stg-01', 'stg-02', 'stg-03', 'stg-04', 'stg-05'];
    cloud.fleet.inject(idlePrefix[1], { failSmokeTest: true });
    const d = await waitApprovingGates(cloud, await deploy('Staging'));
    expect(d.status).toBe('RolledBack');
    expect(d.failure).toMatchObject({ stage: 'Staging', code: 'SmokeTestFailed' });
    expect(stage(d, 'Staging').details.smokeTest).toMatchObject({ nodes: 5, passed: 4 });
    expect(stage(d, 'Staging').details.traffic).toBeUndefined();
    expect(await activeColour()).toBe(live);
    expectFleetOn('1.0.0', ['Development', 'QA', 'Staging']);
  });

  it('Canary: degraded metrics fail wave 2; every canary node rolls back, Staging traffic returns to the old colour', async () => {
    const live = await activeColour();
    // Below the per-node health limit (5 %), so only the comparison with the baseline can catch it.
    cloud.fleet.inject('prod-03', { degrade: { errorRatePercent: 4 } });
    cloud.fleet.inject('prod-04', { degrade: { errorRatePercent: 4 } });
    const d = await waitApprovingGates(cloud, await deploy('Production'));
    expect(d.status).toBe('RolledBack');
    expect(d.failure).toMatchObject({ stage: 'Production', code: 'CanaryAnalysisFailed' });
    const prod = stage(d, 'Production');
    expect(prod.message).toMatch(
      /canary wave 2 \(30% of nodes, 6 nodes\) failed analysis against the baseline: error rate [\d.]+% → [\d.]+% \(\+[\d.]+%, limit \+50%\)/,
    );
    expect(prod.details.wave1).toMatchObject({ passed: true, nodes: 2 });
    expect(prod.details.wave2).toMatchObject({ passed: false, nodes: 6 });
    const errorCheck = prod.details.wave2.checks.find((c: { metric: string }) => c.metric === 'errorRatePercent');
    expect(errorCheck.failed).toBe(true);
    expect(errorCheck.canary).toBeGreaterThan(errorCheck.baseline * 1.5);
    expect(prod.details.wave3).toBeUndefined();
    expect(prod).toMatchObject({ status: 'RolledBack', nodesDeployed: 6, nodesRolledBack: 6 });
    expect(stage(d, 'Staging').status).toBe('RolledBack');
    expect(await activeColour()).toBe(live);
    expectFleetOn('1.0.0', ['Development', 'QA', 'Staging', 'Production']);
  });
});

describe('a deployment to Production', () => {
  let executionId: string;

  it('runs Development → QA → Staging → Production, each with its strategy, node counts and timings', async () => {
    const before = await activeColour();
    executionId = await deploy('Production');
    const d = await waitApprovingGates(cloud, executionId);
    expect(d.status, JSON.stringify(d.failure)).toBe('Succeeded');
    expect(d.stages.map((s: { name: string; strategy?: string; status: string }) => [s.name, s.strategy ?? null, s.status])).toEqual([
      ['Build', null, 'Succeeded'],
      ['Test', null, 'Succeeded'],
      ['SecurityScan', null, 'Succeeded'],
      ['Development', 'Direct', 'Succeeded'],
      ['QA', 'Rolling', 'Succeeded'],
      ['Staging', 'BlueGreen', 'Succeeded'],
      ['Production', 'Canary', 'Succeeded'],
      ['Validation', null, 'Succeeded'],
    ]);
    for (const s of d.stages) expect(Date.parse(s.finishedAt) - Date.parse(s.startedAt)).toBe(s.durationMs);
    expect(stage(d, 'Development')).toMatchObject({ nodesTotal: 3, nodesDeployed: 3, nodesFailed: 0 });
    expect(stage(d, 'QA')).toMatchObject({ nodesTotal: 5, nodesDeployed: 5, details: { batches: 3 } });
    expect(stage(d, 'Staging')).toMatchObject({
      nodesTotal: 5,
      nodesDeployed: 5,
      details: { activeColour: before, idleColour: before === 'blue' ? 'green' : 'blue' },
    });
    expect(stage(d, 'Production')).toMatchObject({ nodesTotal: 20, nodesDeployed: 20, details: { waves: [1, 2, 2, 4] } });
    for (const w of [1, 2, 3, 4]) expect(stage(d, 'Production').details[`wave${w}`]).toMatchObject({ passed: true });
    expect(stage(d, 'Production').details.wave4.nodes).toBe(20);
    // Adaptive stabilisation before the health checks (harness: at least 1 s, 3 polls 1 s apart, at most 10 s), shown per stage.
    const stabilised = ['Development', 'QA', 'Staging'].map((env) => [env, stage(d, env).details.stabilisation]);
    console.log(`stabilisation before health checks: ${JSON.stringify(stabilised)}`);
    for (const [env, s] of stabilised) {
      expect(s, env).toMatchObject({ stable: expect.any(Boolean), polls: expect.any(Number), waitedSeconds: expect.any(Number) });
      expect(s.polls, env).toBeGreaterThanOrEqual(s.stable ? 3 : 2);
      expect(s.waitedSeconds, env).toBeGreaterThanOrEqual(1);
      expect(s.waitedSeconds, env).toBeLessThanOrEqual(11);
      expect(s.summary, env).toMatch(/^metrics (not )?stable after \d+ s/);
    }
    expect(stage(d, 'Development').details.stabilisation).toMatchObject({ batches: 1 });
    expect(stage(d, 'Staging').details.stabilisation).toMatchObject({ batches: expect.any(Number) });
    // Rolling stabilises each batch: the stage shows the last one.
    expect(stage(d, 'QA').details.stabilisation).toMatchObject({ batch: 3, of: 3 });
    // Blue-Green: until when an instant switch-back is guaranteed (BLUE_GREEN_SWITCH_BACK_SECONDS, 1 h by default).
    const traffic = stage(d, 'Staging').details.traffic;
    expect(traffic.switchBackSeconds).toBe(3600);
    expect(Date.parse(traffic.switchBackUntil) - Date.parse(traffic.at)).toBe(3_600_000);
    expectFleetOn('1.1.0', ['Development', 'QA', 'Production']);
    // Blue-green: the new colour serves on 1.1.0; the old colour stands by on 1.0.0.
    const after = await activeColour();
    expect(after).not.toBe(before);
    const staging = await api(cloud, 'GET', '/api/v1/clusters/Staging', { token: cloud.tokens.Viewer });
    for (const n of staging.body.nodes) expect(n.modules['demo-kernel'].version).toBe(n.colour === after ? '1.1.0' : '1.0.0');
  });

  it('reports cluster metrics: averages, total requests/s and per-node figures', async () => {
    const r = await api(cloud, 'GET', '/api/v1/clusters/Production/metrics', { token: cloud.tokens.Viewer });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ environment: 'Production', nodeCount: 20, reportingNodes: 20, source: 'live' });
    expect(r.body.averages.cpuPercent).toBeGreaterThan(0);
    expect(r.body.averages.errorRatePercent).toBeLessThan(5);
    expect(r.body.totalRequestsPerSecond).toBeGreaterThan(20 * 50);
    expect(r.body.nodes).toHaveLength(20);
    expect(r.body.nodes[0]).toMatchObject({ nodeId: 'prod-01', reporting: true, latencyMs: expect.any(Number), requestsPerSecond: expect.any(Number) });
  });

  it('rolls back on demand: every node back on 1.0.0, traffic back on the old colour; then 409', async () => {
    const live = await activeColour();
    const viewer = await api(cloud, 'POST', `/api/v1/deployments/${executionId}/rollback`, { token: cloud.tokens.Viewer, body: {} });
    expect(viewer.status).toBe(403);
    const r = await api(cloud, 'POST', `/api/v1/deployments/${executionId}/rollback`, { token: cloud.tokens.Deployer, body: { reason: 'customer tickets' } });
    expect(r.status).toBe(202);
    expect(r.body.rollback.environments).toEqual(['Production', 'Staging', 'QA', 'Development']);
    const again = await api(cloud, 'POST', `/api/v1/deployments/${executionId}/rollback`, { token: cloud.tokens.Deployer, body: {} });
    expect([409]).toContain(again.status);
    expect(['RollbackInProgress', 'NothingToRollBack']).toContain(again.body.code);
    const d = await waitForDeployment(cloud, executionId, ['RolledBack']);
    expect(d.rollback).toMatchObject({ status: 'Succeeded', requestedBy: 'dev-deployer', reason: 'customer tickets' });
    for (const env of ['Development', 'QA', 'Staging', 'Production']) expect(stage(d, env).status).toBe('RolledBack');
    expectFleetOn('1.0.0', ['Development', 'QA', 'Staging', 'Production']);
    expect(await activeColour()).not.toBe(live);
    // Within the switch-back window: traffic moved back first, and the stage says it was the instant switch-back.
    expect(stage(d, 'Staging').message).toContain(
      `traffic switched back to ${await activeColour()} (instant switch-back, window open until ${stage(d, 'Staging').details.traffic.switchBackUntil})`,
    );
    const nothing = await api(cloud, 'POST', `/api/v1/deployments/${executionId}/rollback`, { token: cloud.tokens.Deployer, body: {} });
    expect(nothing.status).toBe(409);
    expect(nothing.body.code).toBe('NothingToRollBack');
  });

  it('refuses to roll back a running deployment, and a second concurrent deployment gets 409', async () => {
    const id = await deploy('QA');
    const running = await api(cloud, 'POST', `/api/v1/deployments/${id}/rollback`, { token: cloud.tokens.Deployer, body: {} });
    expect(running.status).toBe(409);
    expect(running.body.code).toBe('DeploymentRunning');
    const second = await api(cloud, 'POST', '/api/v1/deployments', {
      token: cloud.tokens.Admin,
      body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'QA' },
    });
    expect(second.status).toBe(409);
    expect(second.body.message).toContain(id);
    expect((await waitForDeployment(cloud, id)).status).toBe('Succeeded');
  });
});
