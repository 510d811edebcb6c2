/**
 * etcd discovery against a real etcd server (Debian's etcd-server, installed by .ci/run): nodes
 * registered under /kmod/nodes/ join Development, take deployments, and leave when their key is
 * deleted or its lease expires; disallowed addresses and ids owned by others are refused.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeAgent } from '../../functions/agent/agent.ts';
import type { AgentKey } from '../../functions/agent/protocol.ts';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { api, startTestCloud, waitForDeployment } from './harness.ts';

const ETCD = ['/usr/bin/etcd', '/usr/local/bin/etcd'].find((p) => spawnSync(p, ['--version']).status === 0);
if (!ETCD) console.warn('SKIPPED test/integration/etcd.test.ts: no etcd binary (apt-get install etcd-server; .ci/run installs it)');

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

let etcd: ChildProcess | undefined;
let etcdDir: string;
let endpoint: string;
let client: Etcd3;
let cloud: LocalCloud;
const agents: NodeAgent[] = [];

async function startEtcd(): Promise<void> {
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  etcdDir = mkdtempSync(join(tmpdir(), 'kmod-etcd-'));
  endpoint = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const args = [
    '--name',
    'kmod-test',
    '--data-dir',
    etcdDir,
    '--listen-client-urls',
    endpoint,
    '--advertise-client-urls',
    endpoint,
    '--listen-peer-urls',
    peer,
  ];
  args.push('--initial-advertise-peer-urls', peer, '--initial-cluster', `kmod-test=${peer}`, '--log-level', 'error');
  etcd = spawn(ETCD as string, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  etcd.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  await eventually('etcd to serve /health', async () => ((await fetch(`${endpoint}/health`)).ok ? true : undefined), 30_000).catch((e: Error) => {
    throw new Error(`${e.message}; etcd said: ${stderr}`);
  });
}

/** A real agent over HTTP on loopback, with the local cloud's agent keys. */
async function startAgent(nodeId: string): Promise<{ agent: NodeAgent; url: string }> {
  const keys = () => (JSON.parse(readFileSync(join(cloud.dataDir, 'secrets', 'agent-keys.json'), 'utf8')) as { keys: AgentKey[] }).keys;
  const agent = new NodeAgent({ nodeId, keys, simulation: true, initialModules: { 'demo-kernel': '1.0.0' } });
  agents.push(agent);
  return { agent, url: await agent.listen(0, '127.0.0.1') };
}

const cluster = async () =>
  (await api(cloud, 'GET', '/api/v1/clusters/Development', { token: cloud.tokens.Viewer })).body as {
    nodes: { nodeId: string; address: string; modules: Record<string, { version: string }> }[];
  };
const nodeIn = async (id: string) => (await cluster()).nodes.find((n) => n.nodeId === id);
const discoveryAudit = async () =>
  (await api(cloud, 'GET', `/api/v1/audit?actor=${encodeURIComponent('system:discovery-etcd')}&limit=500`, { token: cloud.tokens.Admin })).body.items as {
    subject: string;
    action: string;
    details: Record<string, unknown>;
  }[];

beforeAll(async () => {
  if (!ETCD) return;
  await startEtcd();
  client = new Etcd3({ hosts: endpoint });
  cloud = await startTestCloud({ env: { KMOD_ETCD_ENDPOINTS: endpoint, KMOD_ETCD_RESYNC_SECONDS: '2' } });
}, 120_000);

afterAll(async () => {
  await cloud?.stop();
  await Promise.all(agents.map((a) => a.close()));
  client?.close();
  etcd?.kill('SIGTERM');
  if (etcdDir) rmSync(etcdDir, { recursive: true, force: true });
});

describe.skipIf(!ETCD)('etcd discovery (real etcd server)', () => {
  it('a node put under /kmod/nodes/Development joins, is deployed to, and leaves when its key is deleted', async () => {
    const { agent, url } = await startAgent('etcd-01');
    await client.put('/kmod/nodes/Development/etcd-01').value(JSON.stringify({ agentUrl: url, labels: { rack: 'r1' } }));
    const joined = await eventually('etcd-01 to join Development', () => nodeIn('etcd-01'));
    expect(joined.address).toBe(url);
    // What it ran was asked of its agent on join.
    expect(joined.modules['demo-kernel'].version).toBe('1.0.0');

    const r = await api(cloud, 'POST', '/api/v1/deployments', {
      token: cloud.tokens.Deployer,
      body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Development' },
    });
    expect(r.status).toBe(202);
    const d = await waitForDeployment(cloud, r.body.executionId);
    expect(d.status).toBe('Succeeded');
    expect(d.stages.find((s: { name: string }) => s.name === 'Development').message).toContain('on 4 of 4 nodes');
    expect(agent.modules['demo-kernel'].version).toBe('1.1.0');
    expect((await nodeIn('etcd-01'))?.modules['demo-kernel'].version).toBe('1.1.0');

    await client.delete().key('/kmod/nodes/Development/etcd-01');
    await eventually('etcd-01 to leave', async () => ((await nodeIn('etcd-01')) ? undefined : true));
    const events = (await discoveryAudit()).filter((e) => e.subject === 'node#Development/etcd-01');
    expect(events.map((e) => e.action)).toEqual(['node.joined', 'node.left']);
    expect(events[0].details).toMatchObject({ source: 'etcd', address: url, labels: { rack: 'r1' }, ref: '/kmod/nodes/Development/etcd-01' });
    expect(events[1].details).toMatchObject({ source: 'etcd', reason: 'key deleted or its lease expired' });
  }, 120_000);

  it('a node whose lease expires leaves on its own', async () => {
    const { url } = await startAgent('etcd-02');
    const lease = client.lease(2, { autoKeepAlive: false });
    await lease.put('/kmod/nodes/development/etcd-02').value(JSON.stringify({ agentUrl: url, colour: 'green' }));
    const joined = await eventually('etcd-02 to join', () => nodeIn('etcd-02'));
    expect(joined.address).toBe(url);
    await eventually('etcd-02 to leave when its lease expires', async () => ((await nodeIn('etcd-02')) ? undefined : true), 30_000);
    expect((await discoveryAudit()).filter((e) => e.subject === 'node#Development/etcd-02').map((e) => e.action)).toEqual(['node.joined', 'node.left']);
  }, 60_000);

  it('refuses and audits disallowed addresses, bad entries and ids it does not own; never removes nodes it did not add', async () => {
    await client.put('/kmod/nodes/Development/etcd-meta').value(JSON.stringify({ agentUrl: 'http://169.254.169.254/latest' }));
    await client.put('/kmod/nodes/Development/etcd-evil').value(JSON.stringify({ agentUrl: 'http://evil.example:7070' }));
    await client.put('/kmod/nodes/Nowhere/etcd-x').value(JSON.stringify({ agentUrl: 'http://127.0.0.1:1' }));
    await client.put('/kmod/nodes/Development/dev-01').value(JSON.stringify({ agentUrl: 'http://127.0.0.1:1' }));
    const refused = await eventually('four refusals', async () => {
      const r = (await discoveryAudit()).filter((e) => e.action === 'node.refused');
      return r.length >= 4 ? r : undefined;
    });
    const reasons = Object.fromEntries(refused.map((e) => [e.details.ref, e.details.reason]));
    expect(reasons).toEqual({
      '/kmod/nodes/Development/etcd-meta': 'agentUrl refused: 169.254.169.254 is a link-local or metadata address',
      '/kmod/nodes/Development/etcd-evil': 'agentUrl refused: evil.example is not in the agent allowlist',
      '/kmod/nodes/Nowhere/etcd-x': 'unknown environment "Nowhere" (one of Development, QA, Staging, Production)',
      '/kmod/nodes/Development/dev-01': 'node id is already registered by registration',
    });
    // Periodic passes (every 2 s here) do not audit the same refusal again.
    await new Promise((r) => setTimeout(r, 4500));
    expect((await discoveryAudit()).filter((e) => e.action === 'node.refused')).toHaveLength(4);
    const nodes = (await cluster()).nodes;
    expect(nodes.map((n) => n.nodeId).sort()).toEqual(['dev-01', 'dev-02', 'dev-03']);
    // The fleet's own dev-01 keeps its address: an etcd key cannot take over a node it did not add.
    expect(nodes.find((n) => n.nodeId === 'dev-01')?.address).toBe(cloud.fleet.nodes.get('dev-01')?.address);
  }, 60_000);
});
