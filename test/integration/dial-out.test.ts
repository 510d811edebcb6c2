/**
 * Dial-out agents (issue 9 item 4): two real agent processes (`npx tsx scripts/agent.ts`) join
 * Development — one dial-out (no inbound port; one WebSocket to the local cloud's /ws), one inbound
 * — and both take deployments through the same state machines. A connection dropped right after a
 * command was delivered is reconnected, the command is sent again on the new connection, and the
 * agent answers the replay from its idempotency record (the deploy is applied once). Forged,
 * replayed and decommissioned connects are refused; a reply from another node's connection is ignored.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { NodeCredentials } from '../../functions/agent/membership.ts';
import { signRequest, type AgentKey } from '../../functions/agent/protocol.ts';
import { agentConnectPath, NODE_ID_HEADER } from '../../functions/agent/wsProtocol.ts';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { AgentProcesses } from './agentProcesses.ts';
import { api, startTestCloud, waitForDeployment } from './harness.ts';

let cloud: LocalCloud;
const agents = new AgentProcesses();
const dirs = { dial: mkdtempSync(join(tmpdir(), 'kmod-dial-')), inbound: mkdtempSync(join(tmpdir(), 'kmod-inbound-')) };
const ids = { dial: '', inbound: '' };

beforeAll(async () => {
  // Only the two real agents in Development. Real agents report the host's load as CPU: on a busy
  // shared test machine that is near 100 %, which the default 90 % limit would call unhealthy.
  cloud = await startTestCloud({
    fleet: { Development: 0, QA: 1, Staging: 2, Production: 1 },
    env: {
      HEALTH_MAX_CPU_PERCENT: '100',
      HEALTH_MAX_MEMORY_PERCENT: '100',
      AGENT_TIMEOUT_MS: '20000',
      // Whether a 1 s heartbeat arrives within 3 s on a loaded shared 2-core machine is not what this
      // file tests (enrolment.test.ts tests Unreachable); a plan must not refuse these nodes for it.
      NODE_MISSED_HEARTBEATS: '10',
    },
  });
}, 120_000);
afterAll(async () => {
  await agents.stopAll();
  // The demo workload outlives its agent (a hot-swapped module does): stop what the load hooks started.
  for (const dir of Object.values(dirs)) {
    const versions = join(dir, 'modules', 'demo-kernel');
    for (const v of existsSync(versions) ? readdirSync(versions) : []) {
      const pidFile = join(versions, v, 'run', 'module.pid');
      if (!existsSync(pidFile)) continue;
      try {
        process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
  await cloud?.stop();
});

/** Start an agent that installs for real (its own process group); resolves with its node id once it is up. */
const startAgent = (name: string, args: string[]) =>
  agents.start(name, ['--heartbeat-seconds', '1', '--trust-roots', join(cloud.dataDir, 'pki', 'root-ca.pem'), ...args], 30_000);
const output = (name: string) => agents.output(name);

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function clusterNodes(): Promise<Record<string, any>> {
  const r = await api(cloud, 'GET', '/api/v1/clusters/Development', { token: cloud.tokens.Viewer });
  expect(r.status).toBe(200);
  return Object.fromEntries(r.body.nodes.map((n: { nodeId: string }) => [n.nodeId, n]));
}

async function token(maxUses = 1): Promise<string> {
  const r = await api(cloud, 'POST', '/api/v1/enrolment-tokens', { token: cloud.tokens.Admin, body: { environment: 'Development', maxUses } });
  expect(r.status).toBe(201);
  return r.body.token;
}

async function deploy(version: string) {
  const r = await api(cloud, 'POST', '/api/v1/deployments', {
    token: cloud.tokens.Deployer,
    body: { moduleName: 'demo-kernel', version, targetEnvironment: 'Development' },
  });
  expect(r.status, JSON.stringify(r.body)).toBe(202);
  const d = await waitForDeployment(cloud, r.body.executionId, undefined, 120_000);
  return { ...d, executionId: r.body.executionId as string };
}

const creds = (dir: string) => JSON.parse(readFileSync(join(dir, 'credentials.json'), 'utf8')) as NodeCredentials;
const current = (dir: string) => readlinkSync(join(dir, 'modules', 'demo-kernel', 'current'));

async function agentRequests(nodeId: string): Promise<Record<string, any>[]> {
  const r = await cloud.ddb.send(new ScanCommand({ TableName: cloud.tableNames.agentRequests, ConsistentRead: true }));
  return (r.Items ?? [])
    .filter((i) => i.nodeId === nodeId)
    .map((i) => (i.reply ? { ...i, reply: { status: i.reply.status, body: JSON.parse(i.reply.json) } } : i))
    .sort((a, b) => String(a.createdAt).localeCompare(String(b.createdAt)));
}

/** Open a WebSocket as `nodeId` with a connect signed by `key` (or with the given headers); resolves open, or the refusal status. */
function connectAs(nodeId: string, key: AgentKey, opts: { headers?: Record<string, string>; now?: number } = {}) {
  const headers = opts.headers ?? { ...signRequest(key, 'GET', agentConnectPath(nodeId), '', opts.now), [NODE_ID_HEADER]: nodeId };
  const ws = new WebSocket(cloud.wsUrl, { headers });
  return new Promise<{ ws: WebSocket; status: number; headers: Record<string, string> }>((resolve) => {
    ws.once('open', () => resolve({ ws, status: 101, headers }));
    ws.once('unexpected-response', (_req, res) => {
      resolve({ ws, status: res.statusCode ?? 0, headers });
      res.resume();
      ws.terminate();
    });
    ws.once('error', () => undefined);
  });
}

const nextMessage = (ws: WebSocket) => new Promise<any>((resolve) => ws.once('message', (d) => resolve(JSON.parse(d.toString()))));

describe('dial-out and inbound agents side by side', () => {
  it('enrols a dial-out agent (no inbound port) and an inbound one; both are Online, the dial-out one connected', async () => {
    [ids.dial, ids.inbound] = await Promise.all([
      startAgent('dial', ['--api', cloud.apiUrl, '--enrol', await token(), '--data-dir', dirs.dial, '--dial-out', '--keepalive-seconds', '1']),
      startAgent('inbound', ['--api', cloud.apiUrl, '--enrol', await token(), '--data-dir', dirs.inbound, '--host', '127.0.0.1', '--port', '0']),
    ]);
    expect(output('dial')).toContain(`dialing out to ${cloud.wsUrl} (no inbound port)`);
    expect(creds(dirs.dial)).toMatchObject({ nodeId: ids.dial, transport: 'dial-out', wsUrl: cloud.wsUrl });
    expect(creds(dirs.inbound).transport).toBeUndefined();
    const nodes = await until('both Online and the dial-out node connected', async () => {
      const n = await clusterNodes();
      return n[ids.dial]?.status === 'Online' && n[ids.dial]?.connected && n[ids.inbound]?.status === 'Online' ? n : undefined;
    });
    expect(nodes[ids.dial]).toMatchObject({ transport: 'dial-out', address: null, connected: true, membership: 'enrolled' });
    expect(nodes[ids.inbound]).toMatchObject({ transport: 'http', address: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/) });
    expect(Object.keys(nodes)).toHaveLength(2);
    // The keepalive: pings go through $default and come back as pongs, so the connection stays.
    await new Promise((r) => setTimeout(r, 2500));
    expect(output('dial')).not.toMatch(/no pong/);
    expect((await clusterNodes())[ids.dial].connected).toBe(true);
  }, 60_000);

  it('deploys demo-kernel 1.1.0 to both through the same state machine: Succeeded, both on 1.1.0', async () => {
    const d = await deploy('1.1.0');
    expect(d.status, JSON.stringify(d.stages)).toBe('Succeeded');
    expect(d.stages.find((s: { name: string }) => s.name === 'Development')).toMatchObject({ nodesTotal: 2, nodesDeployed: 2 });
    expect(current(dirs.dial)).toBe('1.1.0');
    expect(current(dirs.inbound)).toBe('1.1.0');
    expect(output('dial')).toMatch(/\[demo-kernel@1\.1\.0 load\] started pid \d+/);
    const nodes = await clusterNodes();
    expect(nodes[ids.dial].modules['demo-kernel'].version).toBe('1.1.0');
    // The commands really went over the WebSocket: one request item per call, each answered once.
    const deployCall = (await agentRequests(ids.dial)).find((i) => i.path === '/v1/modules/demo-kernel/deploy')!;
    expect(deployCall).toMatchObject({ method: 'POST', posts: 1, reply: { status: 200, body: { version: '1.1.0', replayed: false } } });
    expect(await agentRequests(ids.inbound)).toEqual([]);
  }, 120_000);

  it('survives a connection dropped right after a deploy command was delivered: reconnect, replay, applied once', async () => {
    const before = await agentRequests(ids.dial);
    const drop = await api(cloud, 'PUT', '/_local/websocket/faults', { body: { dropAfterDelivery: [ids.dial] } });
    expect(drop.status).toBe(200);
    const d = await deploy('1.0.0');
    expect(d.status, JSON.stringify(d.stages)).toBe('Succeeded');
    expect(current(dirs.dial)).toBe('1.0.0');
    expect(current(dirs.inbound)).toBe('1.0.0');
    const calls = (await agentRequests(ids.dial)).filter((i) => !before.some((b) => b.requestId === i.requestId));
    const deployCall = calls.find((i) => i.path === '/v1/modules/demo-kernel/deploy')!;
    // Sent on the first connection (dropped before the answer could go back), then on the new one,
    // where the agent answered from its idempotency record.
    expect(deployCall.posts).toBe(2);
    expect(deployCall.reply).toMatchObject({ status: 200, body: { version: '1.0.0', replayed: true } });
    expect(output('dial')).toMatch(/dial-out connection closed \(1006\); reconnecting in \d+ ms/);
    expect(output('dial')).toMatch(/dial-out connected to .* \(reconnect 1\)/);
    // Applied once: one load of 1.0.0, one idempotency record for this deployment.
    expect(output('dial').match(/\[demo-kernel@1\.0\.0 load\] started pid/g)).toHaveLength(1);
    const state = JSON.parse(readFileSync(join(dirs.dial, 'state.json'), 'utf8')) as { applied: Record<string, unknown> };
    expect(Object.keys(state.applied).filter((k) => k.startsWith(`${d.executionId}:`))).toEqual([`${d.executionId}:demo-kernel:deploy`]);
  }, 120_000);

  it('refuses a forged connect, a replayed one, and a connect for an inbound node', async () => {
    const key = creds(dirs.dial).key;
    const forged = await connectAs(ids.dial, { id: key.id, secret: 'not-the-secret' });
    expect(forged.status).toBe(401);
    const stale = await connectAs(ids.dial, key, { now: Date.now() - 10 * 60_000 });
    expect(stale.status).toBe(401);
    // A captured connect: accepted once, refused when replayed (its timestamp is not newer).
    const first = await connectAs(ids.dial, key);
    expect(first.status).toBe(101);
    first.ws.close();
    const replayed = await connectAs(ids.dial, key, { headers: first.headers });
    expect(replayed.status).toBe(401);
    const inbound = await connectAs(ids.inbound, creds(dirs.inbound).key);
    expect(inbound.status).toBe(401);
    const anonymous = await connectAs(ids.dial, key, { headers: {} });
    expect(anonymous.status).toBe(401);
    // A flood of refused connects is one aggregated security event per address and window, its
    // count current, not one audit item each (found by an adversarial run: 400 connects, 400 items).
    const securityEvents = async () =>
      (await api(cloud, 'GET', '/api/v1/audit?category=security&limit=500', { token: cloud.tokens.Admin })).body.items as {
        action: string;
        actor: string;
        count?: number;
        details: { path?: string };
      }[];
    const connectDenials = async () => (await securityEvents()).filter((e) => e.action === 'access.unauthenticated' && e.details.path === '$connect');
    const before = await connectDenials();
    for (let i = 0; i < 30; i++) expect((await connectAs(ids.dial, { id: key.id, secret: `forged-${i}` })).status).toBe(401);
    const after = await connectDenials();
    expect(after.length - before.length).toBeLessThanOrEqual(1); // a new window may have begun
    expect(after.reduce((n, e) => n + (e.count ?? 1), 0) - before.reduce((n, e) => n + (e.count ?? 1), 0)).toBe(30);
    // The real agent was displaced for a moment by the test's connection; it is connected again.
    await until('the agent to be connected again', async () => ((await clusterNodes())[ids.dial].connected ? true : undefined));
  }, 60_000);

  it('ignores a reply sent for another node’s request, records one for its own, and answers pings', async () => {
    const t = await token();
    const enrolled = await api(cloud, 'POST', '/api/v1/enrol', { body: { token: t, transport: 'dial-out' } });
    expect(enrolled.status, JSON.stringify(enrolled.body)).toBe(201);
    expect(enrolled.body).toMatchObject({ transport: 'dial-out', wsUrl: cloud.wsUrl });
    expect(enrolled.body.address).toBeUndefined();
    const other = { nodeId: enrolled.body.nodeId as string, key: { id: enrolled.body.credentials.keyId, secret: enrolled.body.credentials.secret } };
    const c = await connectAs(other.nodeId, other.key);
    expect(c.status).toBe(101);
    const put = (requestId: string, nodeId: string) =>
      cloud.ddb.send(
        new PutCommand({
          TableName: cloud.tableNames.agentRequests,
          Item: { requestId, nodeId, environment: 'Development', posts: 1, createdAt: new Date().toISOString() },
        }),
      );
    await put('req-for-the-dial-agent-0001', ids.dial);
    await put('req-for-the-other-node-0001', other.nodeId);
    c.ws.send(JSON.stringify({ type: 'response', requestId: 'req-for-the-dial-agent-0001', status: 200, body: { forged: true } }));
    c.ws.send(JSON.stringify({ type: 'response', requestId: 'req-for-the-other-node-0001', status: 200, body: { ok: true } }));
    const own = await until('the own reply', async () => (await agentRequests(other.nodeId)).find((i) => i.reply));
    expect(own.reply).toEqual({ status: 200, body: { ok: true } });
    const foreign = (await agentRequests(ids.dial)).find((i) => i.requestId === 'req-for-the-dial-agent-0001')!;
    expect(foreign.reply).toBeUndefined();
    const audit = await api(cloud, 'GET', `/api/v1/audit?subject=${encodeURIComponent(`node#${other.nodeId}`)}`, { token: cloud.tokens.Admin });
    expect(audit.body.items.map((e: { action: string }) => e.action)).toEqual(expect.arrayContaining(['agent.reply.refused', 'node.connection.opened']));
    const pong = nextMessage(c.ws);
    c.ws.send(JSON.stringify({ type: 'ping' }));
    expect(await pong).toEqual({ type: 'pong' });
    c.ws.close();
  }, 60_000);

  it('decommissioning closes the dial-out connection at once and refuses every reconnect', async () => {
    const r = await api(cloud, 'DELETE', `/api/v1/nodes/${ids.dial}`, { token: cloud.tokens.Admin });
    expect(r.status).toBe(200);
    expect(r.body.status).toBe('Decommissioned');
    await until('the agent to see its connection closed and its reconnect refused', () =>
      /dial-out connection closed \(1000\)[\s\S]*dial-out connect refused \(HTTP 401\)/.test(output('dial')) ? true : undefined,
    );
    const conns = await api(cloud, 'GET', '/_local/websocket/connections');
    expect(conns.body.items.filter((i: { authorizer: { nodeId?: string } }) => i.authorizer?.nodeId === ids.dial)).toEqual([]);
    expect((await connectAs(ids.dial, creds(dirs.dial).key)).status).toBe(401);
    const node = (await api(cloud, 'GET', '/api/v1/clusters/Development', { token: cloud.tokens.Viewer })).body.nodes.find(
      (n: { nodeId: string }) => n.nodeId === ids.dial,
    );
    expect(node).toMatchObject({ status: 'Decommissioned', connected: false });
  }, 60_000);
});
