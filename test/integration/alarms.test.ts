/**
 * Alarm-driven stop on the local cloud: Production names an alarm (a metric condition over the
 * canary nodes' agent reports); it fires during the first wave's bake, and the deployment stops and
 * rolls back with the alarm in the reason, before the wave is ever judged. Development's alarm
 * fires in a Direct deployment's health window (nodes healthy by the health limits).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { agentVersions, api, startTestCloud, waitApprovingGates } from './harness.ts';

let cloud: LocalCloud;

beforeAll(async () => {
  cloud = await startTestCloud({
    env: {
      CANARY_BAKE_SECONDS: '5',
      CANARY_POLL_SECONDS: '1',
      AGENT_TIMEOUT_MS: '1500',
      NODES_PER_BATCH: '5',
      SMOKE_TEST_TIMEOUT_SECONDS: '20',
      ALARMS: JSON.stringify({
        Production: [{ name: 'NodeLatencyHigh', metric: 'latencyMs', above: 60, scope: 'anyNode' }],
        Development: [{ name: 'DevErrors', metric: 'errorRatePercent', above: 3, scope: 'anyNode' }],
      }),
    },
  });
});
afterAll(async () => {
  await cloud?.stop();
});

it('an alarm firing in a health window stops a Direct deployment and rolls it back, though every node is within the health limits', async () => {
  // 4.5 % errors: under the 5 % health limit, over the alarm's 3 %.
  cloud.fleet.inject('dev-01', { degrade: { errorRatePercent: 4 } });
  const r = await api(cloud, 'POST', '/api/v1/deployments', {
    token: cloud.tokens.Deployer,
    body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Development' },
  });
  expect(r.status).toBe(202);
  const d = await waitApprovingGates(cloud, r.body.executionId, 120_000);
  cloud.fleet.inject('dev-01', {});
  expect(d.status).toBe('RolledBack');
  expect(d.failure).toMatchObject({ stage: 'Development', code: 'AlarmFired' });
  const dev = d.stages.find((s: { name: string }) => s.name === 'Development');
  expect(dev.message).toMatch(/^alarm DevErrors: errorRatePercent [\d.]+ > 3 on dev-01 during the health check of batch 0/);
  expect(dev.details.alarm).toMatchObject({ batches: [0], fired: [{ name: 'DevErrors', metric: 'errorRatePercent', above: 3, nodeId: 'dev-01' }] });
  expect(new Set(Object.values(agentVersions(cloud, 'dev')))).toEqual(new Set(['1.0.0']));
  const audit = (await api(cloud, 'GET', `/api/v1/audit?deploymentId=${r.body.executionId}&limit=500`, { token: cloud.tokens.Admin })).body.items as {
    action: string;
  }[];
  expect(audit.map((e) => e.action)).toContain('deployment.alarm.fired');
});

it('an alarm firing during the bake stops the canary and rolls it back, with the alarm in the reason; audited', async () => {
  cloud.fleet.inject('prod-02', { degrade: { latencyMs: 80 } });
  const r = await api(cloud, 'POST', '/api/v1/deployments', {
    token: cloud.tokens.Deployer,
    body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Production' },
  });
  expect(r.status).toBe(202);
  const d = await waitApprovingGates(cloud, r.body.executionId, 120_000);
  cloud.fleet.inject('prod-02', {});
  expect(d.status).toBe('RolledBack');
  expect(d.failure).toMatchObject({ stage: 'Production', code: 'AlarmFired' });
  const prod = d.stages.find((s: { name: string }) => s.name === 'Production');
  expect(prod.message).toMatch(/^alarm NodeLatencyHigh: latencyMs [\d.]+ > 60 on prod-02 during the bake of canary wave 1/);
  expect(prod.details.alarm).toMatchObject({ wave: 1, fired: [{ name: 'NodeLatencyHigh', metric: 'latencyMs', above: 60, nodeId: 'prod-02' }] });
  expect(prod.details.wave1).toBeUndefined(); // stopped in the bake, never judged
  expect(prod).toMatchObject({ status: 'RolledBack', nodesRolledBack: 2 });
  expect(Object.values(agentVersions(cloud, 'prod'))).toEqual(new Array(20).fill('1.0.0'));
  const audit = (await api(cloud, 'GET', `/api/v1/audit?deploymentId=${r.body.executionId}&limit=500`, { token: cloud.tokens.Admin })).body.items as {
    action: string;
  }[];
  expect(audit.map((e) => e.action)).toContain('canary.alarm.fired');
});

// Last: a second cloud in this process takes over its environment variables.
it('a malformed alarm setting stops the local cloud from starting, naming the mistake', async () => {
  await cloud.stop();
  await expect(startTestCloud({ env: { ALARMS: JSON.stringify({ Production: [{ name: 'Bad', metric: 'nope', above: 1 }] }) } })).rejects.toThrow(
    /ALARMS is not valid: Production\.0\.metric/,
  );
  await expect(
    startTestCloud({
      env: {
        ALARMS: JSON.stringify({
          Development: [
            { name: 'Twice', metric: 'latencyMs', above: 60 },
            { name: 'Twice', cloudwatchAlarm: 'x' },
          ],
        }),
      },
    }),
  ).rejects.toThrow(/alarm names are unique/);
}, 120_000);
