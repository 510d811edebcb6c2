/**
 * The hot-path reads (issue 14, ADR 0024): the table calls each makes, counted by the local
 * cloud's meter, and the overview agreeing with each environment's own view.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { api, startTestCloud, waitForDeployment } from './harness.ts';

let cloud: LocalCloud;
let executionId: string;

beforeAll(async () => {
  // The directory cached as in production (the suites' default is 0), so a warm read costs no look-up.
  cloud = await startTestCloud({ env: { DIRECTORY_CACHE_SECONDS: '60' } });
  const r = await api(cloud, 'POST', '/api/v1/deployments', {
    token: cloud.tokens.Deployer,
    body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Development' },
  });
  expect(r.status, JSON.stringify(r.body)).toBe(202);
  executionId = r.body.executionId;
  await waitForDeployment(cloud, executionId);
}, 180_000);

afterAll(async () => {
  await cloud?.stop();
});

/** The calls `times` requests of `path` made, per request, once the caches are warm. */
async function callsPerRequest(path: string, times = 5) {
  expect((await api(cloud, 'GET', path, { token: cloud.tokens.Viewer })).status).toBe(200);
  cloud.meter.reset();
  for (let i = 0; i < times; i++) expect((await api(cloud, 'GET', path, { token: cloud.tokens.Viewer })).status).toBe(200);
  const units = cloud.meter.report().filter((u) => u.label !== 'background');
  expect(units).toHaveLength(1);
  expect(units[0].requests).toBe(times);
  return Object.fromEntries(Object.entries(units[0].calls).map(([k, n]) => [k, n / times]));
}

describe('hot-path reads', () => {
  it('make only the table calls their data needs: no rate-limit write, no directory read when warm', async () => {
    expect(await callsPerRequest('/api/v1/deployments')).toEqual({ 'dynamodb:Query': 1 });
    expect(await callsPerRequest(`/api/v1/deployments/${executionId}`)).toEqual({ 'dynamodb:GetItem': 1 });
    expect(await callsPerRequest('/api/v1/clusters')).toEqual({ 'dynamodb:BatchGetItem': 1, 'dynamodb:Scan': 1 });
    expect(await callsPerRequest('/api/v1/clusters/Development')).toEqual({ 'dynamodb:GetItem': 1, 'dynamodb:Query': 1 });
  });

  it('the overview says what each environment’s own view says', async () => {
    const overview = await api(cloud, 'GET', '/api/v1/clusters', { token: cloud.tokens.Viewer });
    expect(overview.body.items.map((c: { environment: string }) => c.environment)).toEqual(['Development', 'QA', 'Staging', 'Production']);
    for (const summary of overview.body.items) {
      const one = await api(cloud, 'GET', `/api/v1/clusters/${summary.environment}`, { token: cloud.tokens.Viewer });
      const { nodes, ...own } = one.body;
      expect(summary).toEqual(own);
      expect(summary.nodeCount).toBe(nodes.filter((n: { status: string }) => n.status !== 'Decommissioned').length);
    }
    const dev = overview.body.items[0];
    expect(dev.moduleVersions['demo-kernel']).toEqual({ '1.1.0': dev.nodeCount });
  });
});
