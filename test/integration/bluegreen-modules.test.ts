/**
 * Issue 10's defect: the live colour is per environment while deployments are per module, so a
 * Blue-Green deployment of one module used to change what Staging served of every other module.
 * Two modules in Staging: a deployment of one, and its rollback, leave the other served as before.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { loadPki, signedModuleVersion } from '../../localcloud/devPki.ts';
import { demoArtifact } from '../../localcloud/seed.ts';
import { agentVersions, api, startTestCloud, waitApprovingGates, waitForDeployment } from './harness.ts';

let cloud: LocalCloud;

beforeAll(async () => {
  cloud = await startTestCloud({ env: { AGENT_TIMEOUT_MS: '3000', NODES_PER_BATCH: '3', SMOKE_TEST_TIMEOUT_SECONDS: '20' } });
});
afterAll(async () => {
  await cloud?.stop();
});

async function deploy(moduleName: string, version: string) {
  const r = await api(cloud, 'POST', '/api/v1/deployments', { token: cloud.tokens.Deployer, body: { moduleName, version, targetEnvironment: 'Staging' } });
  expect(r.status, JSON.stringify(r.body)).toBe(202);
  return r.body.executionId as string;
}

async function activeColour(): Promise<string> {
  const r = await api(cloud, 'GET', '/api/v1/clusters/Staging', { token: cloud.tokens.Viewer });
  return r.body.activeColour;
}

/** What Staging serves of a module: the versions its live colour's agents run (asked of the agents). */
async function served(module: string): Promise<(string | null)[]> {
  const live = await activeColour();
  const r = await api(cloud, 'GET', '/api/v1/clusters/Staging', { token: cloud.tokens.Viewer });
  const liveIds = new Set((r.body.nodes as { nodeId: string; colour: string }[]).filter((n) => n.colour === live).map((n) => n.nodeId));
  const versions = agentVersions(cloud, 'stg', module);
  return [...new Set(Object.entries(versions).flatMap(([id, v]) => (liveIds.has(id) ? [v ?? null] : [])))];
}

/** What Staging serves of a module as users see it: answers through its router. */
async function servedThroughRouter(module: string): Promise<(string | null)[]> {
  const answers = await Promise.all(
    Array.from({ length: 10 }, async () => ((await (await fetch(`${cloud.routers.Staging}/work`)).json()) as { modules: Record<string, string> }).modules),
  );
  return [...new Set(answers.map((m) => m[module] ?? null))];
}

const stage = (d: any, name: string) => d.stages.find((s: { name: string }) => s.name === name);

describe('Blue-Green changes only the deployed module', () => {
  let kernelDeployment: string;

  it('a second module goes to Staging by Blue-Green: it is served there, demo-kernel still 1.0.0', async () => {
    const pki = loadPki(join(cloud.dataDir, 'pki'))!;
    const net = signedModuleVersion(
      { name: 'demo-net', version: '2.0.0', entrypoint: 'demo_net_init', resources: { cpuMillicores: 100, memoryMiB: 32 } },
      demoArtifact('net-2.0.0'),
      pki,
    );
    expect((await api(cloud, 'POST', '/api/v1/modules', { token: cloud.tokens.Deployer, body: net })).status).toBe(201);
    expect(await served('demo-net')).toEqual([null]);
    const before = await activeColour();
    const d = await waitApprovingGates(cloud, await deploy('demo-net', '2.0.0'));
    expect(d.status, JSON.stringify(d.failure)).toBe('Succeeded');
    expect(await activeColour()).not.toBe(before);
    expect(await served('demo-net')).toEqual(['2.0.0']);
    expect(await served('demo-kernel')).toEqual(['1.0.0']);
    // The colour now idle never got demo-net: the defect's starting point.
    const idle = Object.entries(agentVersions(cloud, 'stg', 'demo-net')).filter(([, v]) => v === undefined);
    expect(idle).toHaveLength(5);
  });

  it('deploying demo-kernel 1.1.0 installs demo-net 2.0.0 on the idle colour first (audited); demo-net is served unchanged after the switch', async () => {
    const before = await activeColour();
    kernelDeployment = await deploy('demo-kernel', '1.1.0');
    const d = await waitApprovingGates(cloud, kernelDeployment);
    expect(d.status, JSON.stringify(d.failure)).toBe('Succeeded');
    expect(await activeColour()).not.toBe(before);
    expect(await served('demo-kernel')).toEqual(['1.1.0']);
    expect(await served('demo-net')).toEqual(['2.0.0']);
    expect(await servedThroughRouter('demo-net')).toEqual(['2.0.0']);
    expect(await servedThroughRouter('demo-kernel')).toEqual(['1.1.0']);
    const s = stage(d, 'Staging');
    expect(s.details.alignment).toEqual({ served: { 'demo-net': '2.0.0' }, mixed: [], nodesToAlign: 5 });
    expect(s.details.traffic).toMatchObject({ from: before, module: 'demo-kernel', version: '1.1.0', unchanged: { 'demo-net': '2.0.0' } });
    const audit = await api(cloud, 'GET', `/api/v1/audit?deploymentId=${kernelDeployment}`, { token: cloud.tokens.Admin });
    expect(audit.status).toBe(200);
    const aligned = (audit.body.items as { action: string; details: any }[]).filter((e) => e.action === 'idle-colour.aligned');
    const nodes = Object.assign({}, ...aligned.map((e) => e.details.nodes));
    expect(Object.keys(nodes).sort()).toHaveLength(5);
    for (const change of Object.values(nodes)) expect(change).toEqual({ 'demo-net': { from: null, to: '2.0.0' } });
    expect(aligned.every((e) => e.details.stage === 'Staging' && e.details.module === 'demo-kernel')).toBe(true);
  });

  it('rolling demo-kernel back moves traffic back and leaves demo-net served unchanged', async () => {
    const live = await activeColour();
    const r = await api(cloud, 'POST', `/api/v1/deployments/${kernelDeployment}/rollback`, { token: cloud.tokens.Deployer, body: { reason: 'test' } });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    const d = await waitForDeployment(cloud, kernelDeployment, ['RolledBack']);
    expect(stage(d, 'Staging').message).toMatch(/traffic switched back to/);
    expect(await activeColour()).not.toBe(live);
    expect(await served('demo-kernel')).toEqual(['1.0.0']);
    expect(await served('demo-net')).toEqual(['2.0.0']);
    expect(await servedThroughRouter('demo-net')).toEqual(['2.0.0']);
    expect(await servedThroughRouter('demo-kernel')).toEqual(['1.0.0']);
  });
});
