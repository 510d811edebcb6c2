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

  it('names service clients uniquely, as it does users, even when the same name is asked for at once', async () => {
    const admin = cloud.tokens.Admin;
    const clients = await Promise.all(
      Array.from({ length: 6 }, () => api(cloud, 'POST', '/api/v1/admin/clients', { token: admin, body: { name: 'race-pipeline', scopes: ['kmod/read'] } })),
    );
    expect(clients.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409, 409]);
    expect(clients.find((r) => r.status === 409)?.body).toEqual({ code: 'AlreadyExists', message: expect.stringContaining('race-pipeline') });
    const users = await Promise.all(
      Array.from({ length: 6 }, () =>
        api(cloud, 'POST', '/api/v1/admin/users', { token: admin, body: { username: 'race.user', email: 'race@example.com', roles: ['Viewer'] } }),
      ),
    );
    expect(users.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409, 409]);
    // Later, one at a time, the same: 409.
    expect((await api(cloud, 'POST', '/api/v1/admin/clients', { token: admin, body: { name: 'race-pipeline', scopes: ['kmod/deploy'] } })).status).toBe(409);
    const listed = (await api(cloud, 'GET', '/api/v1/admin/users', { token: admin })).body.items as { username: string; kind: string }[];
    expect(listed.filter((e) => e.username === 'race-pipeline')).toHaveLength(1);
    expect(listed.filter((e) => e.username === 'race.user')).toHaveLength(1);
    // Only users and clients are listed (the names they hold are not principals).
    expect(new Set(listed.map((e) => e.kind))).toEqual(new Set(['user', 'client']));
  });
});

describe('authorisation from the directory, not from the token', () => {
  /** Polls until `call` answers `status`; resolves with the time it took. */
  async function refusedWithin(call: () => Promise<{ status: number }>, status: number, limitMs: number): Promise<number> {
    const started = Date.now();
    for (;;) {
      const r = await call();
      if (r.status === status) return Date.now() - started;
      if (Date.now() - started > limitMs) throw new Error(`still ${r.status} after ${limitMs} ms`);
      await new Promise((res) => setTimeout(res, 50));
    }
  }

  it('a demoted Admin loses Admin calls within the directory cache TTL, with the old token; a disabled one is refused', async () => {
    const ttlSeconds = 1;
    // The suite runs with no directory cache; this test gives it one, as a deployment has.
    const suiteSetting = process.env.DIRECTORY_CACHE_SECONDS;
    process.env.DIRECTORY_CACHE_SECONDS = String(ttlSeconds);
    try {
      const created = await api(cloud, 'POST', '/api/v1/admin/users', {
        token: cloud.tokens.Admin,
        body: { username: 'olga.ops', email: 'olga@example.com', roles: ['Admin'] },
      });
      const userId = created.body.userId as string;
      const oldToken = (await signIn(userId)).token!;
      const adminCall = () => api(cloud, 'GET', '/api/v1/admin/users', { token: oldToken });
      expect((await adminCall()).status).toBe(200);

      expect((await api(cloud, 'PUT', `/api/v1/admin/users/${userId}/roles`, { token: cloud.tokens.Admin, body: { roles: ['Viewer'] } })).status).toBe(200);
      // The token still says Admin and lives for hours; the directory says Viewer.
      const demotedAfter = await refusedWithin(adminCall, 403, ttlSeconds * 1000 + 2000);
      expect(demotedAfter).toBeLessThanOrEqual(ttlSeconds * 1000 + 2000);
      expect((await adminCall()).body).toMatchObject({ code: 'Forbidden', message: expect.stringContaining('you have Viewer') });
      expect((await api(cloud, 'GET', '/api/v1/deployments', { token: oldToken })).status).toBe(200);

      expect((await api(cloud, 'POST', `/api/v1/admin/users/${userId}/disable`, { token: cloud.tokens.Admin })).status).toBe(200);
      const readCall = () => api(cloud, 'GET', '/api/v1/deployments', { token: oldToken });
      await refusedWithin(readCall, 401, ttlSeconds * 1000 + 2000);
    } finally {
      if (suiteSetting === undefined) delete process.env.DIRECTORY_CACHE_SECONDS;
      else process.env.DIRECTORY_CACHE_SECONDS = suiteSetting;
    }
  });

  it("ignores the token's groups: a Viewer's token that claims Admin is a Viewer", async () => {
    const claimsAdmin = await cloud.issuer.mint({ sub: 'dev-viewer', username: 'vic.viewer', groups: ['Admin', 'Deployer'] });
    expect((await api(cloud, 'GET', '/api/v1/admin/users', { token: claimsAdmin })).status).toBe(403);
    expect((await deployAttempt(claimsAdmin)).status).toBe(403);
    expect((await api(cloud, 'GET', '/api/v1/deployments', { token: claimsAdmin })).status).toBe(200);
  });
});
