/**
 * Enrolled hosts and the traffic router: a host that enrols with a workload URL takes its share of
 * the environment's requests at once; a heartbeat that moves the endpoint moves its share; a
 * decommissioned host gets no request more. Workloads are real HTTP servers in this process; the
 * router is the local cloud's (localcloud/router.ts).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signRequest } from '../../functions/agent/protocol.ts';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { api, expectDocumented, snapshotTables, startTestCloud } from './harness.ts';

let cloud: LocalCloud;
const servers: Server[] = [];
/** A workload that answers every request, counting them. */
async function workload(): Promise<{ url: string; served: () => number }> {
  let n = 0;
  const s = createServer((_req, res) => {
    n++;
    res.end('host workload');
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  servers.push(s);
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}/`, served: () => n };
}

beforeAll(async () => {
  cloud = await startTestCloud({ fleet: { Development: 1, QA: 1, Staging: 2, Production: 3 } });
}, 120_000);
afterAll(async () => {
  for (const s of servers) s.closeAllConnections();
  await cloud?.stop();
});

/** `n` requests through Production's router, in turn: which node answered each. */
async function through(n: number): Promise<string[]> {
  const nodes: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await fetch(`${cloud.routers.Production}/work`);
    await r.arrayBuffer();
    expect(r.status).toBe(200);
    nodes.push(r.headers.get('x-kmod-node') ?? '?');
  }
  return nodes;
}

async function heartbeat(nodeId: string, key: { id: string; secret: string }, workloadUrl: string) {
  const path = `/api/v1/nodes/${nodeId}/heartbeat`;
  const metrics = { nodeId, at: new Date().toISOString(), cpuPercent: 1, memoryPercent: 1, latencyMs: 0, errorRatePercent: 0, requestsPerSecond: 0 };
  const body = JSON.stringify({
    heartbeatSeconds: 1,
    address: 'http://127.0.0.1:9',
    workloadUrl,
    health: { nodeId, protocolVersion: '1', status: 'healthy', reasons: [], at: metrics.at, uptimeSeconds: 1, modules: {}, metrics },
  });
  return api(cloud, 'POST', path, { rawBody: body, headers: { 'content-type': 'application/json', ...signRequest(key, 'POST', path, body) } });
}

describe('enrolled hosts behind the traffic router', () => {
  let nodeId: string;
  let key: { id: string; secret: string };
  let first: Awaited<ReturnType<typeof workload>>;

  it('a host that enrols with a workload URL serves its share of requests at once, and the cluster view shows it', async () => {
    const t = await api(cloud, 'POST', '/api/v1/enrolment-tokens', { token: cloud.tokens.Admin, body: { environment: 'Production', maxUses: 2 } });
    expect(t.status).toBe(201);
    // A workload URL the router must never call is refused, and nothing is written.
    const before = await snapshotTables(cloud);
    for (const workloadUrl of ['http://169.254.169.254/latest/meta-data/', 'file:///etc/passwd', 'not a url']) {
      const bad = await api(cloud, 'POST', '/api/v1/enrol', { body: { token: t.body.token, address: 'http://127.0.0.1:9', workloadUrl } });
      expect(bad.status, workloadUrl).toBe(400);
      expect(bad.body.message).toMatch(/workload URL is refused/);
    }
    expect(await snapshotTables(cloud)).toEqual(before);

    first = await workload();
    const r = await api(cloud, 'POST', '/api/v1/enrol', { body: { token: t.body.token, address: 'http://127.0.0.1:9', workloadUrl: first.url } });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    nodeId = r.body.nodeId;
    key = { id: r.body.credentials.keyId, secret: r.body.credentials.secret };

    // Three fleet nodes and the host, taken in turn: every fourth request is the host's.
    const answered = await through(40);
    expect(answered.filter((n) => n === nodeId)).toHaveLength(10);
    expect(first.served()).toBe(10);

    const c = await api(cloud, 'GET', '/api/v1/clusters/Production', { token: cloud.tokens.Viewer });
    expect(c.body.traffic).toEqual({ router: 'local', weighted: true, canary: null });
    expect(c.body.nodes.find((n: { nodeId: string }) => n.nodeId === nodeId)).toMatchObject({ membership: 'enrolled', workloadUrl: first.url });
    const audit = await api(cloud, 'GET', `/api/v1/audit?subject=${encodeURIComponent(`node#${nodeId}`)}`, { token: cloud.tokens.Admin });
    expect(audit.body.items.find((e: { action: string }) => e.action === 'node.enrolled').details).toMatchObject({ workloadUrl: first.url });
  });

  it('a heartbeat that moves the workload endpoint moves the share with it, audited', async () => {
    const second = await workload();
    const hb = await heartbeat(nodeId, key, second.url);
    expectDocumented('POST /api/v1/nodes/{nodeId}/heartbeat', hb);
    const servedBefore = first.served();
    const answered = await through(40);
    expect(answered.filter((n) => n === nodeId)).toHaveLength(10);
    expect(second.served()).toBe(10);
    expect(first.served()).toBe(servedBefore);
    const audit = await api(cloud, 'GET', `/api/v1/audit?subject=${encodeURIComponent(`node#${nodeId}`)}`, { token: cloud.tokens.Admin });
    expect(audit.body.items.filter((e: { action: string }) => e.action === 'node.workload.changed').map((e: { details: unknown }) => e.details)).toEqual([
      { from: first.url, to: second.url },
    ]);
    // A heartbeat with a refused endpoint changes nothing.
    const refused = await heartbeat(nodeId, key, 'http://169.254.169.254/');
    expect(refused.status).toBe(400);
    expect((await through(8)).filter((n) => n === nodeId)).toHaveLength(2);
  });

  it('a workload URL that is not the node’s own is refused: another node’s, the orchestrator’s own endpoints, the agent’s address', async () => {
    const t = await api(cloud, 'POST', '/api/v1/enrolment-tokens', { token: cloud.tokens.Admin, body: { environment: 'Production', maxUses: 10 } });
    const c = await api(cloud, 'GET', '/api/v1/clusters/Production', { token: cloud.tokens.Viewer });
    const taken = c.body.nodes.find((n: { nodeId: string }) => n.nodeId === 'prod-01').workloadUrl as string;
    const inUse = await api(cloud, 'POST', '/api/v1/enrol', { body: { token: t.body.token, address: 'http://127.0.0.1:9', workloadUrl: taken } });
    expect(inUse.status).toBe(409);
    expect(inUse.body).toMatchObject({ code: 'WorkloadUrlInUse', message: expect.stringContaining('prod-01') });
    // The same origin spelled otherwise is the same origin.
    const spelled = new URL(taken);
    spelled.hostname = 'localhost';
    expect(
      (await api(cloud, 'POST', '/api/v1/enrol', { body: { token: t.body.token, address: 'http://127.0.0.1:9', workloadUrl: spelled.toString() } })).status,
    ).toBe(409);
    for (const own of [cloud.routers.Production!, cloud.routers.Staging!, cloud.apiUrl, cloud.dynamodbUrl, cloud.servicesUrl, 'http://127.0.0.1:9/']) {
      const r = await api(cloud, 'POST', '/api/v1/enrol', { body: { token: t.body.token, address: 'http://127.0.0.1:9', workloadUrl: `${own}/x` } });
      expect(r.status, own).toBe(400);
      expect(r.body.message, own).toMatch(/orchestrator's own endpoints|agent's own address/);
    }
  });

  it('an https workload the router cannot reach fails over to the next node; the router keeps serving', async () => {
    const t = await api(cloud, 'POST', '/api/v1/enrolment-tokens', { token: cloud.tokens.Admin, body: { environment: 'Production' } });
    const r = await api(cloud, 'POST', '/api/v1/enrol', { body: { token: t.body.token, address: 'http://127.0.0.1:9', workloadUrl: 'https://127.0.0.1:1/' } });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    const answered = await through(12);
    expect(answered).not.toContain(r.body.nodeId);
    expect((await api(cloud, 'DELETE', `/api/v1/nodes/${r.body.nodeId}`, { token: cloud.tokens.Admin })).status).toBe(200);
  });

  it('a decommissioned host gets no request more', async () => {
    const r = await api(cloud, 'DELETE', `/api/v1/nodes/${nodeId}`, { token: cloud.tokens.Admin });
    expect(r.status).toBe(200);
    const answered = await through(30);
    expect(answered).not.toContain(nodeId);
    expect(new Set(answered).size).toBe(3);
  });
});
