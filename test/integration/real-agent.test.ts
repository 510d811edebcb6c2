/**
 * The reference agent as a real process (scripts/agent.ts) on a host data dir, registered in
 * Development beside the simulated nodes: the local cloud deploys demo-kernel to it, it verifies
 * the signature against its own roots, unpacks, runs the demo workload, reports its real metrics,
 * and rolls back on demand.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { signRequest, type AgentKey } from '../../functions/agent/protocol.ts';
import { traceIdOf } from '../../functions/lib/traceContext.ts';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { api, startTestCloud, waitForDeployment } from './harness.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
let cloud: LocalCloud;
let agent: ChildProcess;
let address: string;
let output = '';
const hostDir = mkdtempSync(join(tmpdir(), 'kmod-real-agent-'));
const keysFile = () => join(cloud.dataDir, 'secrets', 'agent-keys.json');

async function callAgent(method: 'GET' | 'POST', path: string, body?: unknown) {
  const [key] = (JSON.parse(readFileSync(keysFile(), 'utf8')) as { keys: AgentKey[] }).keys;
  const text = body === undefined ? '' : JSON.stringify(body);
  const r = await fetch(address + path, { method, body: method === 'POST' ? text : undefined, headers: signRequest(key, method, path, text) });
  return (await r.json()) as any;
}

async function deploy(version: string) {
  const r = await api(cloud, 'POST', '/api/v1/deployments', {
    token: cloud.tokens.Deployer,
    body: { moduleName: 'demo-kernel', version, targetEnvironment: 'Development' },
  });
  expect(r.status).toBe(202);
  const d = await waitForDeployment(cloud, r.body.executionId);
  expect(d.status, JSON.stringify(d.stages)).toBe('Succeeded');
  return r.body.executionId as string;
}

const current = () => readlinkSync(join(hostDir, 'modules', 'demo-kernel', 'current'));
const pidOf = (v: string) => Number(readFileSync(join(hostDir, 'modules', 'demo-kernel', v, 'run', 'module.pid'), 'utf8'));
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

beforeAll(async () => {
  cloud = await startTestCloud({ fleet: { Development: 2, QA: 1, Staging: 2, Production: 1 } });
  const args = [
    '--import',
    'tsx',
    'scripts/agent.ts',
    '--node-id',
    'real-01',
    '--keys-file',
    keysFile(),
    '--trust-roots',
    join(cloud.dataDir, 'pki', 'root-ca.pem'),
  ];
  args.push('--data-dir', hostDir, '--state-file', join(hostDir, 'state.json'), '--port', '0', '--host', '127.0.0.1');
  agent = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  agent.stdout!.on('data', (d) => (output += d));
  agent.stderr!.on('data', (d) => (output += d));
  for (let i = 0; i < 200 && !/listening on (http:\/\/\S+)/.test(output); i++) await new Promise((r) => setTimeout(r, 50));
  address = /listening on (http:\/\/\S+)/.exec(output)?.[1] ?? '';
  expect(address, output).not.toBe('');
  const node = { environment: 'Development', nodeId: 'real-01', address, modules: {}, registeredAt: new Date().toISOString() };
  await cloud.ddb.send(new PutCommand({ TableName: cloud.tableNames.nodes, Item: node }));
});

afterAll(async () => {
  if (address) await callAgent('POST', '/v1/modules/demo-kernel/rollback', { deploymentId: 'test-cleanup', toVersion: null }).catch(() => undefined);
  agent?.kill('SIGTERM');
  await cloud?.stop();
});

describe('a real agent process on a host', () => {
  it('installs demo-kernel 1.0.0 then hot-swaps to 1.1.0, running its real workload', async () => {
    await deploy('1.0.0');
    expect(current()).toBe('1.0.0');
    const first = pidOf('1.0.0');
    expect(alive(first)).toBe(true);
    const second = await deploy('1.1.0');
    expect(current()).toBe('1.1.0');
    // The orchestrator's calls carry the deployment's trace (traceparent); the host's log line names it.
    expect(output).toContain(`POST /v1/modules/demo-kernel/deploy → 200 trace=${traceIdOf({ executionId: second }, undefined)}`);
    expect(alive(pidOf('1.1.0'))).toBe(true);
    expect(alive(first)).toBe(false); // unloaded
    expect(existsSync(join(hostDir, 'modules', 'demo-kernel', '1.0.0', 'server.mjs'))).toBe(true);
    expect(output).toMatch(/\[demo-kernel@1\.1\.0 load\] started pid \d+/);
  });

  it('reports the module’s own metrics and smoke test', async () => {
    await new Promise((r) => setTimeout(r, 1500)); // let the workload serve some requests
    const m = await callAgent('GET', '/v1/metrics');
    expect(m).toMatchObject({ nodeId: 'real-01', source: 'module', trafficSource: 'module' });
    expect(m.requestsPerSecond).toBeGreaterThan(5);
    expect(m.latencyMs).toBeGreaterThan(0);
    const health = await callAgent('GET', '/v1/health');
    expect(health).toMatchObject({ status: 'healthy', modules: { 'demo-kernel': { version: '1.1.0' } } });
    const smoke = await callAgent('POST', '/v1/modules/demo-kernel/smoke-test', {});
    expect(smoke).toMatchObject({
      passed: true,
      checks: [{ passed: true }, { name: 'self-test', passed: true, detail: expect.stringContaining('3 of 3 probe requests answered 200') }],
    });
  });

  it('rolls back on demand to the version kept on disk', async () => {
    const list = await api(cloud, 'GET', '/api/v1/deployments?moduleName=demo-kernel', { token: cloud.tokens.Viewer });
    const latest = (list.body.items as { executionId: string; version: string }[]).find((d) => d.version === '1.1.0')!;
    const r = await api(cloud, 'POST', `/api/v1/deployments/${latest.executionId}/rollback`, { token: cloud.tokens.Deployer, body: { reason: 'test' } });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    await waitForDeployment(cloud, latest.executionId, ['RolledBack']);
    expect(current()).toBe('1.0.0');
    expect(alive(pidOf('1.0.0'))).toBe(true);
  });
});
