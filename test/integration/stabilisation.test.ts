/**
 * Adaptive stabilisation on the local cloud: before each canary judgement the wave's metrics are
 * polled until stable (after a minimum, up to a maximum wait), and the stage shows how long it took.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { agentVersions, api, startTestCloud, waitApprovingGates } from './harness.ts';

let cloud: LocalCloud;
const MIN = 3;
const MAX = 8;

beforeAll(async () => {
  cloud = await startTestCloud({
    env: {
      CANARY_BAKE_SECONDS: '1',
      CANARY_WAVES: '10,100',
      AGENT_TIMEOUT_MS: '1500',
      NODES_PER_BATCH: '5',
      SMOKE_TEST_TIMEOUT_SECONDS: '20',
      STABILISE_MIN_SECONDS: String(MIN),
      STABILISE_POLL_SECONDS: '1',
      STABILISE_MAX_SECONDS: String(MAX),
      // This test is about the wait, not the verdict: a latency that keeps climbing must not fail the judge.
      CANARY_MAX_LATENCY_INCREASE_PERCENT: '1000000000',
      CANARY_MIN_LATENCY_DELTA_MS: '1000000000',
    },
  });
});
afterAll(async () => {
  await cloud?.stop();
});

it('waits at least the minimum when stable, up to the maximum while latency keeps climbing, and shows both in the stage', async () => {
  const r = await api(cloud, 'POST', '/api/v1/deployments', {
    token: cloud.tokens.Deployer,
    body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Production' },
  });
  expect(r.status).toBe(202);
  // Wave 1 is prod-01 and prod-02: once they run 1.1.0, their latency grows 30 % every 500 ms (never within ±15 % over 3 polls) until wave 1 is judged.
  let climbing = true;
  const ramp = (async () => {
    while (climbing && agentVersions(cloud, 'prod')['prod-01'] !== '1.1.0') await new Promise((res) => setTimeout(res, 100));
    for (let latencyMs = 20; climbing; latencyMs *= 1.3) {
      for (const n of ['prod-01', 'prod-02']) cloud.fleet.inject(n, { degrade: { latencyMs } });
      await new Promise((res) => setTimeout(res, 500));
      const d = (await api(cloud, 'GET', `/api/v1/deployments/${r.body.executionId}`, { token: cloud.tokens.Viewer })).body;
      if (d.stages?.find((s: { name: string }) => s.name === 'Production')?.details?.wave1) climbing = false;
    }
    for (const n of ['prod-01', 'prod-02']) cloud.fleet.inject(n, {});
  })();
  const d = await waitApprovingGates(cloud, r.body.executionId, 120_000);
  climbing = false;
  await ramp;
  expect(d.status, JSON.stringify(d.failure)).toBe('Succeeded');
  const prod = d.stages.find((s: { name: string }) => s.name === 'Production');
  // Wave 1: never stable, judged at the maximum wait, and says so.
  expect(prod.details.wave1.stabilisation).toMatchObject({ stable: false, unstable: ['latencyMs'] });
  expect(prod.details.wave1.stabilisation.waitedSeconds).toBeGreaterThanOrEqual(MAX);
  expect(prod.details.wave1.stabilisation.polls).toBeGreaterThanOrEqual(MAX);
  expect(prod.details.wave1.summary).toMatch(/^metrics not stable after \d+ s \(latencyMs still moving\); within limits/);
  // Wave 2: stable at once, but not judged before the minimum wait.
  expect(prod.details.wave2.stabilisation).toMatchObject({ stable: true, unstable: [] });
  expect(prod.details.wave2.stabilisation.waitedSeconds).toBeGreaterThanOrEqual(MIN);
  expect(prod.details.wave2.stabilisation.waitedSeconds).toBeLessThan(MAX);
  expect(prod.details.wave2.stabilisation.polls).toBeGreaterThanOrEqual(3);
  console.log(`stabilisation: wave 1 ${JSON.stringify(prod.details.wave1.stabilisation)}, wave 2 ${JSON.stringify(prod.details.wave2.stabilisation)}`);
});
