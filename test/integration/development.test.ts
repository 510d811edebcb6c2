import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentVersions, api, expectDocumented, startTestCloud, waitForDeployment } from './harness.ts';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { loadPki, signedModuleVersion } from '../../localcloud/devPki.ts';
import { demoArtifact } from '../../localcloud/seed.ts';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { ARTIFACT_BUCKET } from '../../localcloud/cloud.ts';

let cloud: LocalCloud;

beforeAll(async () => {
  cloud = await startTestCloud();
});
afterAll(async () => {
  await cloud?.stop();
});

async function deploy(version: string) {
  const r = await api(cloud, 'POST', '/api/v1/deployments', {
    token: cloud.tokens.Deployer,
    body: { moduleName: 'demo-kernel', version, targetEnvironment: 'Development' },
  });
  expect(r.status).toBe(202);
  return r.body.executionId as string;
}

async function register(body: unknown) {
  const r = await api(cloud, 'POST', '/api/v1/modules', { token: cloud.tokens.Deployer, body });
  expectDocumented('POST /api/v1/modules', r, 201);
}

/** The registry record as stored (the API does not show where the artifact lives). */
async function storedVersion(version: string) {
  const r = await cloud.ddb.send(new GetCommand({ TableName: cloud.tableNames.modules, Key: { moduleName: 'demo-kernel', version } }));
  return r.Item as { artifactKey: string; manifest: { artifact: { sha256: string } } };
}

describe('Development deployment (Direct)', () => {
  it('seeds demo-kernel 1.0.0 on every node and 1.1.0 registered', async () => {
    expect(Object.values(agentVersions(cloud, 'dev'))).toEqual(['1.0.0', '1.0.0', '1.0.0']);
    const versions = await api(cloud, 'GET', '/api/v1/modules/demo-kernel/versions', { token: cloud.tokens.Viewer });
    expect(versions.body.items.map((v: { version: string }) => v.version)).toEqual(['1.1.0', '1.0.0']);
  });

  it('rejects a tampered signature at the Security scan and changes no node', async () => {
    const pki = loadPki(join(cloud.dataDir, 'pki'))!;
    const m = signedModuleVersion(
      { name: 'demo-kernel', version: '1.2.0', entrypoint: 'demo_kernel_init', resources: { cpuMillicores: 100, memoryMiB: 32 } },
      demoArtifact('1.2.0'),
      pki,
    );
    // The manifest changes after signing: the signature no longer covers it.
    await register({ ...m, manifest: { ...m.manifest, entrypoint: 'evil_init' } });
    const id = await deploy('1.2.0');
    const d = await waitForDeployment(cloud, id);
    expect(d.status).toBe('Failed');
    expect(d.failure).toMatchObject({ stage: 'SecurityScan', code: 'SignatureInvalid' });
    const stages = Object.fromEntries(d.stages.map((s: { name: string; status: string }) => [s.name, s]));
    expect(stages.Build.status).toBe('Succeeded');
    expect(stages.Test.status).toBe('Succeeded');
    expect(stages.SecurityScan).toMatchObject({ status: 'Failed', message: expect.stringContaining('signature does not match the manifest') });
    expect(stages.Development.status).toBe('Pending');
    expect(stages.Validation.status).toBe('Pending');
    expect(Object.values(agentVersions(cloud, 'dev'))).toEqual(['1.0.0', '1.0.0', '1.0.0']);
  });

  it('rejects an artifact whose digest does not match at the Build stage and changes no node', async () => {
    const pki = loadPki(join(cloud.dataDir, 'pki'))!;
    await register(
      signedModuleVersion(
        { name: 'demo-kernel', version: '1.3.0', entrypoint: 'demo_kernel_init', resources: { cpuMillicores: 100, memoryMiB: 32 } },
        demoArtifact('1.3.0'),
        pki,
      ),
    );
    // Someone swaps the stored artifact after registration.
    cloud.s3.write(ARTIFACT_BUCKET, (await storedVersion('1.3.0')).artifactKey, Buffer.from('not the signed artifact'));
    const id = await deploy('1.3.0');
    const d = await waitForDeployment(cloud, id);
    expect(d.status).toBe('Failed');
    expect(d.failure).toMatchObject({ stage: 'Build', code: 'ArtifactDigestMismatch', message: expect.stringContaining('artifact digest mismatch') });
    expect(d.stages.find((s: { name: string }) => s.name === 'Test').status).toBe('Pending');
    expect(Object.values(agentVersions(cloud, 'dev'))).toEqual(['1.0.0', '1.0.0', '1.0.0']);
  });

  it('registers a version once when several registrations race with different bytes: one 201, the rest 409, and the stored artifact is the winner’s (issue 15 defect 3)', async () => {
    const pki = loadPki(join(cloud.dataDir, 'pki'))!;
    const RACERS = 6;
    // Several rounds: one race can go either way by luck, several cannot.
    for (const version of ['1.4.0', '1.4.1', '1.4.2', '1.4.3']) {
      const bodies = Array.from({ length: RACERS }, (_, i) =>
        signedModuleVersion(
          { name: 'demo-kernel', version, entrypoint: 'demo_kernel_init', resources: { cpuMillicores: 100, memoryMiB: 32 } },
          demoArtifact(`${version}-racer-${i}`),
          pki,
        ),
      );
      const answers = await Promise.all(bodies.map((body) => api(cloud, 'POST', '/api/v1/modules', { token: cloud.tokens.Deployer, body })));
      const statuses = answers.map((a) => a.status).sort();
      expect(statuses, JSON.stringify(answers.map((a) => a.body))).toEqual([201, ...Array(RACERS - 1).fill(409)]);
      const winner = bodies[answers.findIndex((a) => a.status === 201)];
      const stored = await storedVersion(version);
      expect(stored.manifest.artifact.sha256).toBe(winner.manifest.artifact.sha256);
      const bytes = cloud.s3.read(ARTIFACT_BUCKET, stored.artifactKey)!;
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(stored.manifest.artifact.sha256);
    }
    // And the version builds: Build reads the artifact the record names and finds the manifest's digest.
    const d = await waitForDeployment(cloud, await deploy('1.4.3'));
    expect(d.stages.find((s: { name: string }) => s.name === 'Build')).toMatchObject({ status: 'Succeeded' });
    expect(d.status).toBe('Succeeded');
    await waitForDeployment(cloud, await deploy('1.0.0'));
    expect(Object.values(agentVersions(cloud, 'dev'))).toEqual(['1.0.0', '1.0.0', '1.0.0']);
  });

  it('rolls every node back when one node fails to load the version', async () => {
    cloud.fleet.inject('dev-02', { failLoad: ['1.1.0'] });
    try {
      const id = await deploy('1.1.0');
      const d = await waitForDeployment(cloud, id);
      expect(d.status).toBe('RolledBack');
      const dev = d.stages.find((s: { name: string }) => s.name === 'Development');
      expect(dev).toMatchObject({ status: 'RolledBack', strategy: 'Direct', nodesTotal: 3, nodesFailed: 1, nodesDeployed: 2, nodesRolledBack: 2 });
      expect(dev.message).toContain('dev-02');
      expect(Object.values(agentVersions(cloud, 'dev'))).toEqual(['1.0.0', '1.0.0', '1.0.0']);
      const cluster = await api(cloud, 'GET', '/api/v1/clusters/Development', { token: cloud.tokens.Viewer });
      expect(cluster.body.nodes.map((n: { modules: Record<string, { version: string }> }) => n.modules['demo-kernel'].version)).toEqual([
        '1.0.0',
        '1.0.0',
        '1.0.0',
      ]);
    } finally {
      cloud.fleet.inject('dev-02', {});
    }
  });

  it('deploys demo-kernel 1.1.0 to Development: Succeeded, every stage recorded, all 3 nodes on 1.1.0', async () => {
    const id = await deploy('1.1.0');
    const d = await waitForDeployment(cloud, id);
    expect(d.status).toBe('Succeeded');
    expect(d.stages.map((s: { name: string; status: string }) => [s.name, s.status])).toEqual([
      ['Build', 'Succeeded'],
      ['Test', 'Succeeded'],
      ['SecurityScan', 'Succeeded'],
      ['Development', 'Succeeded'],
      ['Validation', 'Succeeded'],
    ]);
    for (const s of d.stages) {
      expect(s.startedAt).toBeTruthy();
      expect(s.finishedAt).toBeTruthy();
      expect(s.durationMs).toBeGreaterThanOrEqual(0);
      expect(s.message).toBeTruthy();
    }
    expect(d.stages[3]).toMatchObject({ strategy: 'Direct', nodesTotal: 3, nodesDeployed: 3, nodesFailed: 0 });
    expect(agentVersions(cloud, 'dev')).toEqual({ 'dev-01': '1.1.0', 'dev-02': '1.1.0', 'dev-03': '1.1.0' });
    const cluster = await api(cloud, 'GET', '/api/v1/clusters/Development?refresh=true', { token: cloud.tokens.Viewer });
    expect(cluster.status).toBe(200);
    expect(cluster.body).toMatchObject({
      environment: 'Development',
      strategy: 'Direct',
      nodeCount: 3,
      healthyNodes: 3,
      moduleVersions: { 'demo-kernel': { '1.1.0': 3 } },
    });
    // Other environments were not touched.
    expect(Object.values(agentVersions(cloud, 'qa')).every((v) => v === '1.0.0')).toBe(true);
  });

  it('records an audit event for every state change of a deployment', async () => {
    const list = await api(cloud, 'GET', '/api/v1/deployments?status=Succeeded&limit=1', { token: cloud.tokens.Viewer });
    const id = list.body.items[0].executionId;
    const { QueryCommand } = await import('@aws-sdk/lib-dynamodb');
    const r = await cloud.ddb.send(
      new QueryCommand({ TableName: cloud.tableNames.audit, KeyConditionExpression: 'subject = :s', ExpressionAttributeValues: { ':s': `deployment#${id}` } }),
    );
    const actions = (r.Items ?? []).map((i) => `${i.action}${i.details?.stage ? `:${i.details.stage}` : ''}`);
    expect(actions[0]).toBe('deployment.requested');
    for (const stage of ['Build', 'Test', 'SecurityScan', 'Development', 'Validation']) {
      expect(actions).toContain(`stage.running:${stage}`);
      expect(actions).toContain(`stage.succeeded:${stage}`);
    }
    expect(actions.at(-1)).toBe('deployment.succeeded');
    expect(r.Items!.find((i) => i.action === 'deployment.requested')!.actor).toBe('dev-deployer');
  });

  it('lists deployments newest first with filters and a cursor', async () => {
    const page1 = await api(cloud, 'GET', '/api/v1/deployments?limit=2', { token: cloud.tokens.Viewer });
    expect(page1.status).toBe(200);
    expect(page1.body.items).toHaveLength(2);
    expect(page1.body.nextCursor).toBeTruthy();
    const page2 = await api(cloud, 'GET', `/api/v1/deployments?limit=2&cursor=${page1.body.nextCursor}`, { token: cloud.tokens.Viewer });
    expect(page2.body.items).toHaveLength(2);
    const all = [...page1.body.items, ...page2.body.items].map((d: { createdAt: string }) => d.createdAt);
    expect([...all].sort().reverse()).toEqual(all);
    const failed = await api(cloud, 'GET', '/api/v1/deployments?status=Failed', { token: cloud.tokens.Viewer });
    expect(failed.body.items.length).toBe(2);
    expect(failed.body.items.every((d: { status: string }) => d.status === 'Failed')).toBe(true);
  });
});
