import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { api, startTestCloud, waitForDeployment } from './harness.ts';
import type { LocalCloud } from '../../localcloud/cloud.ts';

let cloud: LocalCloud;
let redirector: Server;
let redirectorUrl: string;

// Development gets extra nodes whose registered addresses an attacker would like the orchestrator
// to call: a redirect to the metadata service, the metadata address itself, a host outside the
// allowlist. None of them may be called (or followed).
beforeAll(async () => {
  cloud = await startTestCloud();
  let hits = 0;
  redirector = createServer((_req, res) => {
    hits++;
    res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' });
    res.end();
  });
  await new Promise<void>((r) => redirector.listen(0, '127.0.0.1', r));
  redirectorUrl = `http://127.0.0.1:${(redirector.address() as { port: number }).port}`;
  (globalThis as { redirectHits?: () => number }).redirectHits = () => hits;
});
afterAll(async () => {
  redirector?.close();
  await cloud?.stop();
});

async function registerRogue(nodeId: string, address: string) {
  await cloud.ddb.send(
    new PutCommand({
      TableName: cloud.tableNames.nodes,
      Item: { environment: 'Development', nodeId, address, modules: { 'demo-kernel': { version: '1.0.0' } }, registeredAt: new Date().toISOString() },
    }),
  );
}

describe('SSRF guard on agent calls', () => {
  it('refuses the metadata address, a non-allowlisted host and a redirect, and the deployment rolls back', async () => {
    await registerRogue('dev-90', 'http://169.254.169.254');
    await registerRogue('dev-91', 'http://evil.example:8080');
    await registerRogue('dev-92', redirectorUrl);
    const r = await api(cloud, 'POST', '/api/v1/deployments', {
      token: cloud.tokens.Deployer,
      body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Development' },
    });
    const d = await waitForDeployment(cloud, r.body.executionId);
    expect(d.status).toBe('RolledBack');
    const message = d.stages.find((s: { name: string }) => s.name === 'Development').message as string;
    expect(message).toContain('refused to call node dev-90: 169.254.169.254 is a link-local or metadata address');
    expect(message).toContain('refused to call node dev-91: evil.example is not in the agent allowlist');
    expect(message).toContain('node dev-92 answered with a redirect, which is refused');
    // The redirect was answered once and not followed.
    expect((globalThis as unknown as { redirectHits: () => number }).redirectHits()).toBe(1);
    const cluster = await api(cloud, 'GET', '/api/v1/clusters/Development', { token: cloud.tokens.Viewer });
    for (const n of cluster.body.nodes) expect(n.modules['demo-kernel'].version).toBe('1.0.0');
  });
});
