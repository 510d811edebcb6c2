import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, snapshotTables, startTestCloud, waitForDeployment } from './harness.ts';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { DEV_USERS } from '../../localcloud/identity.ts';
import { SignJWT, generateKeyPair } from 'jose';
import { ROUTES } from '../../functions/catalog.ts';
import { ROLES } from '../../functions/domain/roles.ts';

let cloud: LocalCloud;
beforeAll(async () => {
  cloud = await startTestCloud();
});
afterAll(async () => {
  await cloud?.stop();
});

const valid = { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Development' };

describe('authentication at the edge', () => {
  it('serves /health without a token', async () => {
    const r = await api(cloud, 'GET', '/health');
    expect(r.status).toBe(200);
    expect(r.body.status).toBe('ok');
  });

  it.each([
    ['GET', '/api/v1/deployments'],
    ['POST', '/api/v1/deployments'],
    ['GET', '/api/v1/deployments/dep-000000000-000000000000'],
    ['GET', '/api/v1/clusters'],
    ['GET', '/api/v1/clusters/Development'],
    ['GET', '/api/v1/modules'],
    ['POST', '/api/v1/modules'],
  ])('401 for %s %s without a token', async (method, path) => {
    const before = await snapshotTables(cloud);
    const r = await api(cloud, method, path, method === 'POST' ? { body: valid } : {});
    expect(r.status).toBe(401);
    expect(r.body).toEqual({ code: 'Unauthorized', message: expect.any(String) });
    expect(r.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(await snapshotTables(cloud)).toEqual(before);
  });

  it("answers with the request's correlation id: the caller's when it is sane, else the gateway's request id, errors included", async () => {
    const given = await api(cloud, 'GET', '/api/v1/deployments', { token: cloud.tokens.Viewer, headers: { 'x-correlation-id': 'ticket-4711' } });
    expect(given.status).toBe(200);
    expect(given.headers.get('x-correlation-id')).toBe('ticket-4711');
    const notFound = await api(cloud, 'GET', '/api/v1/deployments/dep-000000000-000000000000', {
      token: cloud.tokens.Viewer,
      headers: { 'x-correlation-id': 'ticket-4712' },
    });
    expect(notFound.status).toBe(404);
    expect(notFound.headers.get('x-correlation-id')).toBe('ticket-4712');
    const forged = await api(cloud, 'GET', '/api/v1/deployments', { token: cloud.tokens.Viewer, headers: { 'x-correlation-id': 'a b="c"' } });
    expect(forged.headers.get('x-correlation-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('401 with WWW-Authenticate for expired, not-yet-valid, tampered, foreign-key, wrong-issuer and wrong-client tokens', async () => {
    const expired = await cloud.issuer.mint(DEV_USERS.Deployer, { overrides: { exp: Math.floor(Date.now() / 1000) - 60 } });
    const good = cloud.tokens.Deployer;
    const [h, p, s] = good.split('.');
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString());
    const tampered = [h, Buffer.from(JSON.stringify({ ...payload, 'cognito:groups': ['Admin'] })).toString('base64url'), s].join('.');
    const wrongClient = await cloud.issuer.mint(DEV_USERS.Deployer, { overrides: { client_id: 'someone-else' } });
    const wrongIssuer = await cloud.issuer.mint(DEV_USERS.Deployer, { overrides: { iss: 'https://evil.example' } });
    const notYetValid = await cloud.issuer.mint(DEV_USERS.Deployer, { overrides: { nbf: Math.floor(Date.now() / 1000) + 3600 } });
    const { privateKey } = await generateKeyPair('RS256');
    const foreignKey = await new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: 'other' }).sign(privateKey);
    for (const token of [expired, notYetValid, tampered, wrongClient, wrongIssuer, foreignKey, 'not-a-jwt']) {
      const r = await api(cloud, 'GET', '/api/v1/deployments', { token });
      expect(r.status, token.slice(0, 20)).toBe(401);
      expect(r.headers.get('www-authenticate')).toMatch(/^Bearer/);
    }
    expect((await api(cloud, 'GET', '/api/v1/deployments', { token: good })).status).toBe(200);
  });

  it('gives a registered service client the role of its OAuth scope', async () => {
    const created = await api(cloud, 'POST', '/api/v1/admin/clients', {
      token: cloud.tokens.Admin,
      body: { name: 'edge-pipeline', scopes: ['kmod/read', 'kmod/deploy'] },
    });
    expect(created.status).toBe(201);
    const clientId = created.body.clientId as string;
    const svc = { sub: clientId, username: 'edge-pipeline', groups: [] };
    const mint = (scope: string) => cloud.issuer.mint(svc, { overrides: { client_id: clientId, scope, username: undefined, 'cognito:groups': undefined } });
    const reader = await mint('kmod/read');
    expect((await api(cloud, 'GET', '/api/v1/deployments', { token: reader })).status).toBe(200);
    expect((await api(cloud, 'POST', '/api/v1/deployments', { token: reader, body: { invalid: true } })).status).toBe(403);
    const deployer = await mint('kmod/deploy');
    expect((await api(cloud, 'POST', '/api/v1/deployments', { token: deployer, body: { invalid: true } })).status).toBe(400);
    const none = await mint('openid');
    expect((await api(cloud, 'GET', '/api/v1/deployments', { token: none })).status).toBe(403);
  });

  it('refuses the token attacks a strict verifier refuses (401 with WWW-Authenticate), and changes nothing', async () => {
    const now = Math.floor(Date.now() / 1000);
    const year = 365 * 86_400;
    const registered = await api(cloud, 'POST', '/api/v1/admin/clients', { token: cloud.tokens.Admin, body: { name: 'edge-attacked', scopes: ['kmod/read'] } });
    const clientId = registered.body.clientId as string;
    const deployer = (overrides: Record<string, unknown>) => cloud.issuer.mint(DEV_USERS.Deployer, { overrides });
    const attacks: [string, Promise<string>][] = [
      ['no exp', deployer({ exp: undefined })],
      ['no iat', deployer({ iat: undefined })],
      ['iat a year in the future', deployer({ iat: now + year, exp: now + year + 3600 })],
      ['exp of 1e15', deployer({ exp: 1e15 })],
      ['a lifetime of 25 hours', deployer({ iat: now, exp: now + 25 * 3600 })],
      ['client_id as an array', deployer({ client_id: ['kmod-local-client'] })],
      ['client_id as a number', deployer({ client_id: 7 })],
      ['aud as an array', deployer({ aud: ['kmod-local-client'] })],
      ['no sub', deployer({ sub: undefined })],
      ['an empty sub', deployer({ sub: '' })],
      ['a sub unknown to the directory, claiming Admin', cloud.issuer.mint({ sub: 'mallory', username: 'mallory', groups: ['Admin'] })],
      ['a registered client named as sub of a token issued to another client', deployer({ sub: clientId, client_id: 'kmod-local-client' })],
      [
        'an unregistered service client with a scope',
        cloud.issuer.mint({ sub: 'ghost-client', username: 'ghost', groups: [] }, { overrides: { client_id: 'ghost-client', scope: 'kmod/deploy' } }),
      ],
      ['an id token', deployer({ token_use: 'id' })],
      ['groups that are not a list', deployer({ 'cognito:groups': 'Admin' })],
    ];
    const before = await snapshotTables(cloud);
    const answers: Record<string, unknown> = {};
    for (const [name, minted] of attacks) {
      const r = await api(cloud, 'GET', '/api/v1/deployments', { token: await minted });
      answers[name] = { status: r.status, body: r.body, challenge: r.headers.get('www-authenticate')?.split(' ')[0] };
    }
    const refused = { status: 401, body: { code: 'Unauthorized', message: expect.any(String) }, challenge: 'Bearer' };
    expect(answers).toEqual(Object.fromEntries(attacks.map(([name]) => [name, refused])));
    expect(await snapshotTables(cloud)).toEqual(before);
    // The dev tokens of .local/cloud.json are strict tokens: each still works.
    for (const role of ['Admin', 'Deployer', 'Viewer', 'Approver'] as const) {
      expect((await api(cloud, 'GET', '/api/v1/deployments', { token: cloud.tokens[role] })).status, role).toBe(200);
    }
  });

  it('403 when a Viewer tries to create a deployment, and nothing is written', async () => {
    const before = await snapshotTables(cloud);
    const r = await api(cloud, 'POST', '/api/v1/deployments', { token: cloud.tokens.Viewer, body: valid });
    expect(r.status).toBe(403);
    expect(r.body.code).toBe('Forbidden');
    expect(await snapshotTables(cloud)).toEqual(before);
  });
});

describe('crafted input the handlers used to answer with 500', () => {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

  it('400 for a cursor of the wrong shape, on deployments and on the audit trail', async () => {
    for (const path of [
      `/api/v1/deployments?cursor=${b64({ executionId: 'x' })}`,
      `/api/v1/deployments?moduleName=demo-kernel&cursor=${b64({ executionId: 'x' })}`,
      `/api/v1/audit?category=security&cursor=${b64({ nope: 'x' })}`,
    ]) {
      const r = await api(cloud, 'GET', path, { token: cloud.tokens.Admin });
      expect(r, path).toMatchObject({ status: 400, body: { code: 'ValidationError', message: 'cursor is not one this API returned' } });
    }
  });

  it('400 JSON from the gateway for a malformed percent-escape; gateway answers carry HSTS and nosniff', async () => {
    const r = await api(cloud, 'GET', '/api/v1/deployments/%', { token: cloud.tokens.Viewer });
    expect(r).toMatchObject({ status: 400, body: { code: 'BadRequest', message: 'the path has a malformed percent-escape' } });
    for (const answer of [r, await api(cloud, 'GET', '/api/v1/clusters'), await api(cloud, 'GET', '/no/such/route')]) {
      expect(answer.headers.get('strict-transport-security')).toMatch(/max-age=\d+/);
      expect(answer.headers.get('x-content-type-options')).toBe('nosniff');
    }
  });

  it('4xx JSON, not 502 or an empty 431, for Object.prototype names in queries and headers and for oversized URLs', async () => {
    const proto = await api(cloud, 'GET', '/health?constructor=1&__proto__=2');
    expect(proto.status).toBe(200);
    const list = await api(cloud, 'GET', '/api/v1/deployments?constructor=1', { token: cloud.tokens.Viewer, headers: { toString: 'x', valueOf: 'y' } });
    expect(list).toMatchObject({ status: 400, body: { code: 'ValidationError' } });
    const huge = await api(cloud, 'GET', `/api/v1/deployments?moduleName=${'a'.repeat(20_000)}`, { token: cloud.tokens.Viewer });
    expect(huge).toMatchObject({ status: 431, body: { code: 'RequestHeaderFieldsTooLarge' } });
  });

  it('400 for an audit range that ends before it starts', async () => {
    const r = await api(cloud, 'GET', '/api/v1/audit?category=security&from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z', { token: cloud.tokens.Admin });
    expect(r.status).toBe(400);
    expect(r.body.message).toMatch(/from must not be after to/);
  });

  it('400 page for an approval link whose body decodes to null, on GET and POST', async () => {
    for (const method of ['GET', 'POST']) {
      const form = method === 'POST' ? { rawBody: 'confirm=approve', headers: { 'content-type': 'application/x-www-form-urlencoded' } } : {};
      const r = await api(cloud, method, '/approvals/links/bnVsbA.x', form);
      expect(r.status, method).toBe(400);
      expect(String(r.body)).toContain('This approval link is not valid');
    }
  });
});

describe('headers sent twice', () => {
  /** A request written byte for byte (fetch and http.request merge or refuse repeated headers). */
  const raw = (method: string, path: string, headers: string[], body = '') =>
    new Promise<{ status: number; body: any }>((resolve, reject) => {
      const { hostname, port } = new URL(cloud.apiUrl);
      const lines = [`${method} ${path} HTTP/1.1`, `host: ${hostname}:${port}`, 'connection: close', `content-length: ${Buffer.byteLength(body)}`];
      for (let i = 0; i < headers.length; i += 2) lines.push(`${headers[i]}: ${headers[i + 1]}`);
      const socket = connect(Number(port), hostname, () => socket.write(`${lines.join('\r\n')}\r\n\r\n${body}`));
      let text = '';
      socket.on('data', (c) => (text += c));
      socket.on('error', reject);
      socket.on('close', () => {
        // The JSON object of the answer, whether or not it came chunked.
        const json = /\{.*\}/s.exec(text.slice(text.indexOf('\r\n\r\n')))?.[0];
        resolve({ status: Number(text.split(' ')[1]), body: json ? JSON.parse(json) : null });
      });
    });

  it('refuses two different Authorization headers whichever comes first, and two different Idempotency-Keys', async () => {
    for (const pair of [
      ['Bearer junk.a.b', `Bearer ${cloud.tokens.Admin}`],
      [`Bearer ${cloud.tokens.Admin}`, 'Bearer junk.a.b'],
    ]) {
      const r = await raw('GET', '/api/v1/admin/users', ['Authorization', pair[0], 'authorization', pair[1]]);
      expect(r, JSON.stringify(r.body)).toMatchObject({ status: 401 });
    }
    const before = await snapshotTables(cloud);
    const body = JSON.stringify({ moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Development' });
    const auth = ['authorization', `Bearer ${cloud.tokens.Deployer}`, 'content-type', 'application/json'];
    const r = await raw('POST', '/api/v1/deployments', [...auth, 'Idempotency-Key', 'twice-1', 'idempotency-key', 'twice-2'], body);
    expect(r).toMatchObject({ status: 400, body: { code: 'AmbiguousHeader' } });
    const ct = await raw(
      'POST',
      '/api/v1/deployments',
      ['authorization', `Bearer ${cloud.tokens.Deployer}`, 'Content-Type', 'text/plain', 'content-type', 'application/json'],
      body,
    );
    expect(ct).toMatchObject({ status: 400, body: { code: 'AmbiguousHeader' } });
    expect(await snapshotTables(cloud)).toEqual(before);
  });
});

describe('input validation', () => {
  const cases: [string, { body?: unknown; rawBody?: string; headers?: Record<string, string> }, string][] = [
    ['unknown environment', { body: { ...valid, targetEnvironment: 'Prod' } }, 'ValidationError'],
    ['unknown module', { body: { ...valid, moduleName: 'no-such-module' } }, 'UnknownModuleVersion'],
    ['unregistered version', { body: { ...valid, version: '9.9.9' } }, 'UnknownModuleVersion'],
    ['bad semver', { body: { ...valid, version: '1.1' } }, 'ValidationError'],
    ['missing field', { body: { moduleName: 'demo-kernel', version: '1.1.0' } }, 'ValidationError'],
    ['extra field', { body: { ...valid, force: true } }, 'ValidationError'],
    ['wrong type', { body: { ...valid, version: 110 } }, 'ValidationError'],
    ['metadata of the wrong type', { body: { ...valid, metadata: { ticket: 42 } } }, 'ValidationError'],
    ['oversize body', { body: { ...valid, metadata: { note: 'x'.repeat(200), pad: 'y'.repeat(20_000) } } }, 'BodyTooLarge'],
    ['invalid JSON', { rawBody: '{"moduleName":', headers: { 'content-type': 'application/json' } }, 'ValidationError'],
    ['empty body', { rawBody: '', headers: { 'content-type': 'application/json' } }, 'ValidationError'],
    ['array body', { body: [valid] }, 'ValidationError'],
    ['bad Idempotency-Key', { body: valid, headers: { 'Idempotency-Key': 'has spaces in it' } }, 'ValidationError'],
  ];

  it.each(cases)('400 for %s, with a JSON error, and every table unchanged', async (_, req, code) => {
    const before = await snapshotTables(cloud);
    const r = await api(cloud, 'POST', '/api/v1/deployments', { token: cloud.tokens.Deployer, ...req });
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ code, message: expect.any(String) });
    expect(r.body.message.length).toBeGreaterThan(5);
    expect(await snapshotTables(cloud)).toEqual(before);
  });

  it('415 for a non-JSON content type', async () => {
    const r = await api(cloud, 'POST', '/api/v1/deployments', {
      token: cloud.tokens.Deployer,
      rawBody: 'moduleName=x',
      headers: { 'content-type': 'text/plain' },
    });
    expect(r.status).toBe(415);
  });

  it('415 {code, message} for a JSON body in another charset or a near-JSON media type; nothing is created', async () => {
    const before = await snapshotTables(cloud);
    for (const type of ['APPLICATION/JSON; charset=utf-16', 'application/json; charset=iso-8859-1', 'application/json-seq', 'application/json; foo=bar']) {
      const r = await api(cloud, 'POST', '/api/v1/deployments', {
        token: cloud.tokens.Deployer,
        rawBody: JSON.stringify(valid),
        headers: { 'content-type': type },
      });
      expect(r.status, type).toBe(415);
      expect(r.body, type).toEqual({ code: 'UnsupportedMediaType', message: expect.stringContaining('application/json') });
    }
    expect(await snapshotTables(cloud)).toEqual(before);
    // The media type is case-insensitive and UTF-8 may be named: past the media type, stopped by validation.
    for (const type of ['Application/JSON', 'application/json; charset=UTF-8']) {
      const r = await api(cloud, 'POST', '/api/v1/deployments', {
        token: cloud.tokens.Deployer,
        rawBody: '{"invalid":true}',
        headers: { 'content-type': type },
      });
      expect(r.status, type).toBe(400);
    }
  });

  it('400 for bad list filters and 404 for unknown ids, routes and environments', async () => {
    const t = { token: cloud.tokens.Viewer };
    expect((await api(cloud, 'GET', '/api/v1/deployments?limit=1000', t)).status).toBe(400);
    expect((await api(cloud, 'GET', '/api/v1/deployments?status=Done', t)).status).toBe(400);
    expect((await api(cloud, 'GET', '/api/v1/deployments?cursor=%%%', t)).status).toBe(400);
    expect((await api(cloud, 'GET', '/api/v1/deployments/dep-000000000-000000000000', t)).body.code).toBe('NotFound');
    expect((await api(cloud, 'GET', '/api/v1/deployments/whatever', t)).status).toBe(404);
    expect((await api(cloud, 'GET', '/api/v1/clusters/Moon', t)).status).toBe(404);
    expect((await api(cloud, 'GET', '/api/v1/nope', t)).status).toBe(404);
  });
});

describe('Idempotency-Key', () => {
  it('returns the same deployment for a repeated key and 409 for the same key with another body', async () => {
    const headers = { 'Idempotency-Key': 'release-2026-11-26' };
    const a = await api(cloud, 'POST', '/api/v1/deployments', { token: cloud.tokens.Deployer, body: valid, headers });
    const b = await api(cloud, 'POST', '/api/v1/deployments', { token: cloud.tokens.Deployer, body: valid, headers });
    expect(a.status).toBe(202);
    expect(b.status).toBe(202);
    expect(b.body.executionId).toBe(a.body.executionId);
    expect(b.headers.get('idempotent-replayed')).toBe('true');
    const c = await api(cloud, 'POST', '/api/v1/deployments', { token: cloud.tokens.Deployer, body: { ...valid, version: '1.0.0' }, headers });
    expect(c.status).toBe(409);
    expect(c.body.code).toBe('IdempotencyKeyReused');
    const list = await api(cloud, 'GET', '/api/v1/deployments', { token: cloud.tokens.Viewer });
    expect(list.body.items.filter((d: { executionId: string }) => d.executionId === a.body.executionId)).toHaveLength(1);
    await waitForDeployment(cloud, a.body.executionId);
  });

  it('gives concurrent requests with one key one deployment', async () => {
    const headers = { 'Idempotency-Key': 'concurrent-key' };
    const rs = await Promise.all(
      Array.from({ length: 5 }, () => api(cloud, 'POST', '/api/v1/deployments', { token: cloud.tokens.Deployer, body: valid, headers })),
    );
    expect(rs.map((r) => r.status)).toEqual([202, 202, 202, 202, 202]);
    expect(new Set(rs.map((r) => r.body.executionId)).size).toBe(1);
    await waitForDeployment(cloud, rs[0].body.executionId);
  });
});

describe('one deployment at a time per module and environment', () => {
  it('answers 409 naming the running deployment, and accepts again once it finished', async () => {
    const first = await api(cloud, 'POST', '/api/v1/deployments', { token: cloud.tokens.Deployer, body: valid });
    expect(first.status).toBe(202);
    const before = await snapshotTables(cloud);
    const second = await api(cloud, 'POST', '/api/v1/deployments', { token: cloud.tokens.Admin, body: { ...valid, version: '1.0.0' } });
    expect(second.status).toBe(409);
    expect(second.body).toEqual({ code: 'DeploymentInProgress', message: expect.stringContaining(first.body.executionId) });
    // The refused request wrote nothing: same deployments, same lock owners (the running one renews its lease).
    const after = await snapshotTables(cloud);
    const ids = (items: unknown[]) => items.map((i) => (i as { executionId: string }).executionId).sort();
    expect(ids(after.deployments)).toEqual(ids(before.deployments));
    expect(ids(after.locks)).toEqual(ids(before.locks));
    expect(after.idempotency).toEqual(before.idempotency);
    await waitForDeployment(cloud, first.body.executionId);
    const third = await api(cloud, 'POST', '/api/v1/deployments', { token: cloud.tokens.Admin, body: { ...valid, version: '1.0.0' } });
    expect(third.status).toBe(202);
    await waitForDeployment(cloud, third.body.executionId);
  });

  it('takes over a lock whose lease lapsed (a crashed execution cannot hold it forever)', async () => {
    const { PutCommand } = await import('@aws-sdk/lib-dynamodb');
    const lapsed = Math.floor(Date.now() / 1000) - 1;
    await cloud.ddb.send(
      new PutCommand({
        TableName: cloud.tableNames.locks,
        Item: { lockKey: 'demo-kernel#Development', executionId: 'dep-crashed000-000000000000', acquiredAt: '2026-01-01T00:00:00Z', expiresAt: lapsed },
      }),
    );
    const live = Math.floor(Date.now() / 1000) + 600;
    await cloud.ddb.send(
      new PutCommand({
        TableName: cloud.tableNames.locks,
        Item: { lockKey: 'demo-kernel#QA', executionId: 'dep-holding00-000000000000', acquiredAt: '2026-01-01T00:00:00Z', expiresAt: live },
      }),
    );
    const blocked = await api(cloud, 'POST', '/api/v1/deployments', { token: cloud.tokens.Deployer, body: { ...valid, targetEnvironment: 'QA' } });
    expect(blocked.status).toBe(409);
    expect(blocked.body.message).toContain('dep-holding00-000000000000');
    const taken = await api(cloud, 'POST', '/api/v1/deployments', { token: cloud.tokens.Deployer, body: valid });
    expect(taken.status).toBe(202);
    await waitForDeployment(cloud, taken.body.executionId);
  });
});

describe('authorization matrix: every protected route, every role', () => {
  const sample: Record<string, string> = {
    executionId: 'dep-000000000-000000000000',
    environment: 'QA',
    moduleName: 'demo-kernel',
    version: '1.0.0',
    token: 'x',
    userId: 'user-none',
  };
  const cases = ROUTES.filter((r) => r.roles !== 'public').flatMap((r) =>
    ROLES.map((role) => [r.method, r.path, role, (r.roles as readonly string[]).includes(role)] as const),
  );

  it.each(cases)('%s %s as %s → allowed=%s', async (method, path, role, allowed) => {
    const url = path.replace(/\{(\w+)\}/g, (_, k: string) => sample[k]);
    // An invalid body: an allowed caller gets past authorization and is stopped by validation.
    const r = await api(cloud, method, url, { token: cloud.tokens[role], ...(method === 'POST' || method === 'PUT' ? { body: { invalid: true } } : {}) });
    if (allowed) expect([200, 400, 404, 409], JSON.stringify(r.body)).toContain(r.status);
    else {
      expect(r.status).toBe(403);
      expect(r.body.code).toBe('Forbidden');
    }
  });
});

describe('audit query and Prometheus metrics', () => {
  it('lets an Admin read the audit trail by deployment, actor and category', async () => {
    const list = await api(cloud, 'GET', '/api/v1/deployments?limit=1', { token: cloud.tokens.Viewer });
    const id = list.body.items[0].executionId;
    const byDeployment = await api(cloud, 'GET', `/api/v1/audit?deploymentId=${id}`, { token: cloud.tokens.Admin });
    expect(byDeployment.status).toBe(200);
    expect(byDeployment.body.items[0]).toMatchObject({
      subject: `deployment#${id}`,
      action: 'deployment.requested',
      actor: expect.any(String),
      at: expect.any(String),
    });
    const byActor = await api(cloud, 'GET', '/api/v1/audit?actor=dev-deployer&limit=5', { token: cloud.tokens.Admin });
    expect(byActor.body.items.length).toBeGreaterThan(0);
    expect(byActor.body.items.every((i: { actor: string }) => i.actor === 'dev-deployer')).toBe(true);
    const from = new Date(Date.now() - 3600_000).toISOString();
    const byCategory = await api(cloud, 'GET', `/api/v1/audit?category=module&from=${from}`, { token: cloud.tokens.Admin });
    expect(byCategory.status).toBe(200);
    expect((await api(cloud, 'GET', '/api/v1/audit?category=module&actor=x', { token: cloud.tokens.Admin })).status).toBe(400);
  });

  it('serves Prometheus text without a token', async () => {
    const r = await fetch(`${cloud.apiUrl}/metrics`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toContain('text/plain');
    const text = await r.text();
    expect(text).toMatch(/^kmod_nodes\{environment="Production"\} 20$/m);
    expect(text).toMatch(/^kmod_deployments\{status="Succeeded"\} \d+$/m);
    expect(text).toContain('# TYPE kmod_approvals_pending gauge');
  });
});
