/**
 * The response schemas are true (docs/adr/0031-response-schemas.md): real answers of the local
 * cloud, for the main routes, parsed with the zod schema the OpenAPI document is generated from
 * (functions/handlers/api/responses.ts). The schemas are strict objects, so a field a handler
 * answers but the document does not describe fails here, as does a changed type or status.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { RESPONSES, responseSchema } from '../../functions/handlers/api/responses.ts';
import { Validator } from '@seriousme/openapi-schema-validator';
import { buildOpenApi } from '../../scripts/openapi.ts';
import { api, expectDocumented, startTestCloud, waitForDeployment } from './harness.ts';

let cloud: LocalCloud;
let staging: string;
const checked = new Set<string>();

/** Call the route, expect its documented status, and parse the body with the documented schema. */
async function conforms(route: string, path: string, opts: { token?: string; body?: unknown; status?: number }) {
  const method = route.split(' ')[0];
  const status = opts.status ?? RESPONSES[route][0].status;
  const r = await api(cloud, method, path, { token: opts.token, body: opts.body });
  expectDocumented(route, r, status);
  checked.add(route);
  return r.body;
}

beforeAll(async () => {
  cloud = await startTestCloud();
}, 180_000);

afterAll(async () => {
  await cloud?.stop();
});

describe('real answers match the documented response schemas', () => {
  it('a Staging deployment (blue-green, with an approval gate) from request to Succeeded', async () => {
    const created = await conforms('POST /api/v1/deployments', '/api/v1/deployments', {
      token: cloud.tokens.Deployer,
      body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Staging', metadata: { ticket: 'OPS-1' } },
    });
    staging = created.executionId;
    await conforms('GET /api/v1/deployments/{executionId}', `/api/v1/deployments/${staging}`, { token: cloud.tokens.Viewer });
    await waitForDeployment(cloud, staging, ['WaitingForApproval'], 120_000);
    const waiting = await conforms('GET /api/v1/deployments/{executionId}', `/api/v1/deployments/${staging}`, { token: cloud.tokens.Viewer });
    expect(waiting.status).toBe('WaitingForApproval');
    const pending = await conforms('GET /api/v1/approvals/pending', '/api/v1/approvals/pending', { token: cloud.tokens.Viewer });
    expect(pending.items.length).toBeGreaterThan(0);
    await conforms('GET /api/v1/approvals/deployments/{executionId}', `/api/v1/approvals/deployments/${staging}`, { token: cloud.tokens.Viewer });
    // Every gate on the way (QA has none; Staging has one), approved through the API.
    for (;;) {
      const d = await waitForDeployment(cloud, staging, ['WaitingForApproval', 'Succeeded', 'Failed', 'RolledBack', 'Cancelled'], 120_000);
      if (d.status !== 'WaitingForApproval') break;
      const decided = await conforms('POST /api/v1/approvals/deployments/{executionId}/approve', `/api/v1/approvals/deployments/${staging}/approve`, {
        token: cloud.tokens.Approver,
        body: { reason: 'schemas hold' },
      });
      expect(decided.status).toBe('Approved');
      await waitForDeployment(cloud, staging, ['Running', 'Succeeded', 'Failed', 'RolledBack', 'Cancelled'], 120_000);
    }
    const done = await conforms('GET /api/v1/deployments/{executionId}', `/api/v1/deployments/${staging}`, { token: cloud.tokens.Viewer });
    expect(done.status).toBe('Succeeded');
    expect(done.stages.some((s: { details?: unknown }) => s.details !== undefined)).toBe(true);
    const list = await conforms('GET /api/v1/deployments', '/api/v1/deployments?limit=5', { token: cloud.tokens.Viewer });
    expect(list.items[0].executionId).toBe(staging);
  }, 300_000);

  it('a finished deployment rolled back on demand', async () => {
    const r = await conforms('POST /api/v1/deployments/{executionId}/rollback', `/api/v1/deployments/${staging}/rollback`, {
      token: cloud.tokens.Deployer,
      body: { reason: 'schema check' },
    });
    expect(r.rollback.status).toBe('Running');
    await waitForDeployment(cloud, staging, ['RolledBack'], 120_000);
    const after = await conforms('GET /api/v1/deployments/{executionId}', `/api/v1/deployments/${staging}`, { token: cloud.tokens.Viewer });
    expect(after.rollback).toBeDefined();
  }, 180_000);

  it('a deployment cancelled while it waits for approval', async () => {
    const created = await conforms('POST /api/v1/deployments', '/api/v1/deployments', {
      token: cloud.tokens.Deployer,
      body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Production' },
    });
    await waitForDeployment(cloud, created.executionId, ['WaitingForApproval'], 120_000);
    const cancelled = await conforms('POST /api/v1/deployments/{executionId}/cancel', `/api/v1/deployments/${created.executionId}/cancel`, {
      token: cloud.tokens.Deployer,
      body: { reason: 'schema check' },
    });
    expect(cancelled.cancellation.reason).toBe('schema check');
    await waitForDeployment(cloud, created.executionId, ['Cancelled'], 120_000);
    const after = await conforms('GET /api/v1/deployments/{executionId}', `/api/v1/deployments/${created.executionId}`, { token: cloud.tokens.Viewer });
    expect(after.cancellation).toBeDefined();
  }, 300_000);

  it('clusters: the overview, one environment with its nodes, and the metrics', async () => {
    const all = await conforms('GET /api/v1/clusters', '/api/v1/clusters', { token: cloud.tokens.Viewer });
    expect(all.items).toHaveLength(4);
    for (const env of ['Development', 'Staging', 'Production']) {
      const one = await conforms('GET /api/v1/clusters/{environment}', `/api/v1/clusters/${env}`, { token: cloud.tokens.Viewer });
      expect(one.nodes.length).toBeGreaterThan(0);
    }
    await conforms('GET /api/v1/clusters/{environment}', '/api/v1/clusters/QA?refresh=true', { token: cloud.tokens.Viewer });
    const m = await conforms('GET /api/v1/clusters/{environment}/metrics', '/api/v1/clusters/QA/metrics', { token: cloud.tokens.Viewer });
    expect(m.nodes.length).toBeGreaterThan(0);
  }, 60_000);

  it('modules, audit, health, admin reads and enrolment tokens', async () => {
    const modules = await conforms('GET /api/v1/modules', '/api/v1/modules', { token: cloud.tokens.Viewer });
    expect(modules.items.map((m: { moduleName: string }) => m.moduleName)).toContain('demo-kernel');
    await conforms('GET /api/v1/modules/{moduleName}/versions', '/api/v1/modules/demo-kernel/versions', { token: cloud.tokens.Viewer });
    await conforms('GET /api/v1/modules/{moduleName}/versions/{version}', '/api/v1/modules/demo-kernel/versions/1.1.0', { token: cloud.tokens.Viewer });
    const byDeployment = await conforms('GET /api/v1/audit', `/api/v1/audit?deploymentId=${staging}`, { token: cloud.tokens.Admin });
    expect(byDeployment.items.length).toBeGreaterThan(0);
    await conforms('GET /api/v1/audit', '/api/v1/audit?limit=50', { token: cloud.tokens.Admin });
    await conforms('GET /health', '/health', { token: cloud.tokens.Viewer });
    const users = await conforms('GET /api/v1/admin/users', '/api/v1/admin/users', { token: cloud.tokens.Admin });
    expect(users.items.length).toBeGreaterThan(0);
    await conforms('GET /api/v1/admin/rate-limits', '/api/v1/admin/rate-limits', { token: cloud.tokens.Admin });
    await conforms('POST /api/v1/enrolment-tokens', '/api/v1/enrolment-tokens', {
      token: cloud.tokens.Admin,
      body: { environment: 'QA', maxUses: 2, labels: { rack: 'r1' } },
    });
    const tokens = await conforms('GET /api/v1/enrolment-tokens', '/api/v1/enrolment-tokens', { token: cloud.tokens.Admin });
    await conforms('DELETE /api/v1/enrolment-tokens/{tokenId}', `/api/v1/enrolment-tokens/${tokens.items[0].tokenId}`, { token: cloud.tokens.Admin });
  }, 60_000);

  it('fleet writes: enrol a host, rotate its key, decommission it', async () => {
    const t = await conforms('POST /api/v1/enrolment-tokens', '/api/v1/enrolment-tokens', { token: cloud.tokens.Admin, body: { environment: 'QA' } });
    const enrolled = await conforms('POST /api/v1/enrol', '/api/v1/enrol', { body: { token: t.token, address: 'http://127.0.0.1:9' } });
    const path = `/api/v1/nodes/${enrolled.nodeId}/rotate-credentials`;
    const started = await conforms('POST /api/v1/nodes/{nodeId}/rotate-credentials', path, { token: cloud.tokens.Admin, body: { reason: 'schema check' } });
    expect(started.started).toBe(true);
    const pending = await conforms('POST /api/v1/nodes/{nodeId}/rotate-credentials', path, { token: cloud.tokens.Admin, body: {}, status: 200 });
    expect(pending.started).toBe(false);
    const qa = await conforms('GET /api/v1/clusters/{environment}', '/api/v1/clusters/QA', { token: cloud.tokens.Viewer });
    expect(qa.nodes.some((n: { nodeId: string; membership: string }) => n.nodeId === enrolled.nodeId && n.membership === 'enrolled')).toBe(true);
    await conforms('DELETE /api/v1/nodes/{nodeId}', `/api/v1/nodes/${enrolled.nodeId}`, { token: cloud.tokens.Admin });
    const after = await conforms('GET /api/v1/clusters/{environment}', '/api/v1/clusters/QA', { token: cloud.tokens.Viewer });
    expect(after.nodes.find((n: { nodeId: string }) => n.nodeId === enrolled.nodeId).status).toBe('Decommissioned');
  }, 60_000);

  it('admin writes: users, roles, disable and enable, service clients, subscriptions, rate limits', async () => {
    const admin = cloud.tokens.Admin;
    const user = await conforms('POST /api/v1/admin/users', '/api/v1/admin/users', {
      token: admin,
      body: { username: 'schema-check', email: 'schema-check@example.com', roles: ['Viewer'] },
    });
    await conforms('PUT /api/v1/admin/users/{userId}/roles', `/api/v1/admin/users/${user.userId}/roles`, {
      token: admin,
      body: { roles: ['Viewer', 'Approver'] },
    });
    const disabled = await conforms('POST /api/v1/admin/users/{userId}/disable', `/api/v1/admin/users/${user.userId}/disable`, { token: admin });
    expect(disabled.enabled).toBe(false);
    await conforms('POST /api/v1/admin/users/{userId}/enable', `/api/v1/admin/users/${user.userId}/enable`, { token: admin });
    const client = await conforms('POST /api/v1/admin/clients', '/api/v1/admin/clients', { token: admin, body: { name: 'schema-bot', scopes: ['kmod/read'] } });
    await conforms('POST /api/v1/admin/users/{userId}/disable', `/api/v1/admin/users/${client.clientId}/disable`, { token: admin });
    await conforms('GET /api/v1/admin/subscriptions', '/api/v1/admin/subscriptions', { token: admin });
    await conforms('POST /api/v1/admin/subscriptions/sync', '/api/v1/admin/subscriptions/sync', { token: admin });
    const limits = await conforms('GET /api/v1/admin/rate-limits', '/api/v1/admin/rate-limits', { token: admin });
    await conforms('PUT /api/v1/admin/rate-limits', '/api/v1/admin/rate-limits', { token: admin, body: limits });
  }, 60_000);

  it('GET /openapi.json: public, the generated document, valid OpenAPI 3.1', async () => {
    const doc = await conforms('GET /openapi.json', '/openapi.json', {});
    expect(doc).toEqual(buildOpenApi());
    const r = await api(cloud, 'GET', '/openapi.json');
    expect(r.headers.get('content-type')).toMatch(/^application\/json/);
    expect(r.headers.get('cache-control')).toBe('public, max-age=300');
    const v = new Validator();
    const result = await v.validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it('a strict schema refuses a field the document does not describe', () => {
    const s = responseSchema('GET /health');
    expect(s.safeParse({ status: 'ok', service: 'kmod-orchestrator', time: new Date().toISOString() }).success).toBe(true);
    expect(s.safeParse({ status: 'ok', service: 'kmod-orchestrator', time: new Date().toISOString(), extra: 1 }).success).toBe(false);
    expect(checked.size).toBe(33);
  });
});
