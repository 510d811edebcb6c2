import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import { api, startTestCloud } from './harness.ts';
import type { LocalCloud } from '../../localcloud/cloud.ts';

let cloud: LocalCloud;
beforeAll(async () => {
  cloud = await startTestCloud();
});
afterAll(async () => {
  await cloud?.stop();
});

async function signIn(userId: string): Promise<{ status: number; token?: string }> {
  const r = await fetch(`${cloud.apiUrl}/_local/identity/token`, { method: 'POST', body: JSON.stringify({ userId }) });
  const body = (await r.json()) as { access_token?: string };
  return { status: r.status, token: body.access_token };
}

const deployAttempt = (token: string) => api(cloud, 'POST', '/api/v1/deployments', { token, body: { invalid: true } });

describe('user and service-principal management (Admin)', () => {
  it('creates a user, assigns roles, disables and enables them; every change is audited', async () => {
    const admin = cloud.tokens.Admin;
    expect(
      (
        await api(cloud, 'POST', '/api/v1/admin/users', {
          token: cloud.tokens.Deployer,
          body: { username: 'eve.ops', email: 'eve@example.com', roles: ['Viewer'] },
        })
      ).status,
    ).toBe(403);
    expect((await api(cloud, 'POST', '/api/v1/admin/users', { token: admin, body: { username: 'Eve', email: 'not-an-email', roles: [] } })).status).toBe(400);
    const created = await api(cloud, 'POST', '/api/v1/admin/users', {
      token: admin,
      body: { username: 'eve.ops', email: 'eve@example.com', roles: ['Viewer'] },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ username: 'eve.ops', roles: ['Viewer'], enabled: true, kind: 'user', createdBy: 'dev-admin' });
    expect(
      (await api(cloud, 'POST', '/api/v1/admin/users', { token: admin, body: { username: 'eve.ops', email: 'eve@example.com', roles: ['Viewer'] } })).status,
    ).toBe(409);
    const userId = created.body.userId as string;

    const viewer = (await signIn(userId)).token!;
    expect((await api(cloud, 'GET', '/api/v1/deployments', { token: viewer })).status).toBe(200);
    expect((await deployAttempt(viewer)).status).toBe(403);

    expect((await api(cloud, 'PUT', `/api/v1/admin/users/${userId}/roles`, { token: admin, body: { roles: ['Deployer'] } })).status).toBe(200);
    const deployer = (await signIn(userId)).token!;
    expect((await deployAttempt(deployer)).status).toBe(400); // past authorization, stopped by validation

    expect((await api(cloud, 'POST', `/api/v1/admin/users/${userId}/disable`, { token: admin })).status).toBe(200);
    // Refused at once, even with a token issued before.
    const refused = await api(cloud, 'GET', '/api/v1/deployments', { token: deployer });
    expect(refused.status).toBe(401);
    expect((await signIn(userId)).status).toBe(403);
    expect((await api(cloud, 'POST', `/api/v1/admin/users/${userId}/enable`, { token: admin })).status).toBe(200);
    expect((await api(cloud, 'GET', '/api/v1/deployments', { token: deployer })).status).toBe(200);

    const listed = await api(cloud, 'GET', '/api/v1/admin/users', { token: admin });
    expect(listed.body.items.map((u: { username: string }) => u.username)).toEqual(expect.arrayContaining(['ada.admin', 'dan.deployer', 'eve.ops']));
    const trail = await cloud.ddb.send(
      new QueryCommand({
        TableName: cloud.tableNames.audit,
        KeyConditionExpression: 'subject = :s',
        ExpressionAttributeValues: { ':s': `principal#${userId}` },
      }),
    );
    // Her outcome mail is requested with the user (pending her confirmation, so disabling cannot remove it: SNS lists it without an ARN).
    expect((trail.Items ?? []).map((i) => i.action)).toEqual([
      'user.created',
      'subscription.requested',
      'user.roles-changed',
      'principal.disabled',
      'principal.enabled',
    ]);
  });

  it('creates a service client whose client-credentials tokens carry its scopes as roles', async () => {
    const created = await api(cloud, 'POST', '/api/v1/admin/clients', { token: cloud.tokens.Admin, body: { name: 'ci-pipeline', scopes: ['kmod/read'] } });
    expect(created.status).toBe(201);
    const { clientId, clientSecret } = created.body as { clientId: string; clientSecret: string };
    expect(clientSecret.length).toBeGreaterThan(20);
    expect(JSON.stringify((await api(cloud, 'GET', '/api/v1/admin/users', { token: cloud.tokens.Admin })).body)).not.toContain(clientSecret);
    const tokenFor = (secret: string) =>
      fetch(`${cloud.apiUrl}/_local/identity/oauth2/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: secret }).toString(),
      });
    expect((await tokenFor('wrong')).status).toBe(401);
    const token = ((await (await tokenFor(clientSecret)).json()) as { access_token: string }).access_token;
    expect((await api(cloud, 'GET', '/api/v1/clusters', { token })).status).toBe(200);
    expect((await deployAttempt(token)).status).toBe(403);
    await api(cloud, 'POST', `/api/v1/admin/users/${clientId}/disable`, { token: cloud.tokens.Admin });
    expect((await api(cloud, 'GET', '/api/v1/clusters', { token })).status).toBe(401);
  });
});
