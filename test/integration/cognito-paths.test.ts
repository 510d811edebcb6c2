/**
 * The code paths that only run on AWS, with Cognito (issue 13 item 3): the directory's Cognito
 * admin calls (functions/lib/directory.ts) and the Cognito branch of token verification
 * (functions/lib/auth.ts). Cognito does not run locally, so its client is mocked with
 * aws-sdk-client-mock and the exact calls are checked; the Users table is the real one
 * (DynamoDB Local), and the JWKS is served at the URL Cognito publishes it under.
 */
import { generateKeyPairSync, createSign, type KeyObject } from 'node:crypto';
import {
  AdminAddUserToGroupCommand,
  AdminCreateUserCommand,
  AdminDisableUserCommand,
  AdminEnableUserCommand,
  AdminRemoveUserFromGroupCommand,
  AdminUserGlobalSignOutCommand,
  CognitoIdentityProviderClient,
  CreateUserPoolClientCommand,
  DeleteUserPoolClientCommand,
} from '@aws-sdk/client-cognito-identity-provider';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { startTestCloud } from './harness.ts';

const POOL = 'eu-west-1_AbCdEf123';
const ISSUER = `https://cognito-idp.eu-west-1.amazonaws.com/${POOL}`;
const SUB = '3f1c2a7e-1b2c-4d5e-8f90-0a1b2c3d4e5f';
const idp = mockClient(CognitoIdentityProviderClient);

let cloud: LocalCloud;
beforeAll(async () => {
  cloud = await startTestCloud();
});
afterAll(async () => cloud?.stop());
beforeEach(() => {
  idp.reset();
  vi.stubEnv('COGNITO_USER_POOL_ID', POOL);
});
afterEach(() => {
  vi.unstubAllEnvs();
  vi.unstubAllGlobals();
});

const userItem = async (userId: string) =>
  (await cloud.ddb.send(new GetCommand({ TableName: cloud.tableNames.users, Key: { userId }, ConsistentRead: true }))).Item;

describe('the directory on AWS: Cognito admin calls', () => {
  it('creates a user in the pool with a verified email, adds its groups, and keeps the directory entry under its sub', async () => {
    const { createUser } = await import('../../functions/lib/directory.ts');
    idp.on(AdminCreateUserCommand).resolves({ User: { Username: 'amy.ops', Attributes: [{ Name: 'sub', Value: SUB }] } });
    idp.on(AdminAddUserToGroupCommand).resolves({});
    const entry = await createUser({ username: 'amy.ops', email: 'amy@example.com', roles: ['Deployer', 'Approver'] }, 'dev-admin');

    expect(idp.commandCalls(AdminCreateUserCommand).map((c) => c.args[0].input)).toEqual([
      {
        UserPoolId: POOL,
        Username: 'amy.ops',
        UserAttributes: [
          { Name: 'email', Value: 'amy@example.com' },
          { Name: 'email_verified', Value: 'true' },
        ],
      },
    ]);
    expect(idp.commandCalls(AdminAddUserToGroupCommand).map((c) => c.args[0].input)).toEqual([
      { UserPoolId: POOL, Username: 'amy.ops', GroupName: 'Deployer' },
      { UserPoolId: POOL, Username: 'amy.ops', GroupName: 'Approver' },
    ]);
    expect(entry).toMatchObject({ userId: SUB, kind: 'user', roles: ['Deployer', 'Approver'], enabled: true });
    expect(await userItem(SUB)).toMatchObject({ username: 'amy.ops', roles: ['Deployer', 'Approver'] });
    expect(await userItem('name#amy.ops')).toMatchObject({ kind: 'name', holder: SUB });
  });

  it('answers a name Cognito already holds with 409 and writes nothing', async () => {
    const { createUser } = await import('../../functions/lib/directory.ts');
    idp.on(AdminCreateUserCommand).rejects(Object.assign(new Error('User account already exists'), { name: 'UsernameExistsException' }));
    await expect(createUser({ username: 'taken.in.pool', email: 'x@example.com', roles: ['Viewer'] }, 'dev-admin')).rejects.toMatchObject({
      code: 'AlreadyExists',
      status: 409,
    });
    expect(idp.commandCalls(AdminAddUserToGroupCommand)).toHaveLength(0);
    expect(await userItem('name#taken.in.pool')).toBeUndefined();
  });

  it('changes groups by difference, and disables with a global sign-out, enables back', async () => {
    const { setEnabled, setRoles } = await import('../../functions/lib/directory.ts');
    idp.on(AdminAddUserToGroupCommand).resolves({});
    idp.on(AdminRemoveUserFromGroupCommand).resolves({});
    await setRoles(SUB, ['Approver', 'Admin']);
    expect(idp.commandCalls(AdminAddUserToGroupCommand).map((c) => c.args[0].input)).toEqual([{ UserPoolId: POOL, Username: 'amy.ops', GroupName: 'Admin' }]);
    expect(idp.commandCalls(AdminRemoveUserFromGroupCommand).map((c) => c.args[0].input)).toEqual([
      { UserPoolId: POOL, Username: 'amy.ops', GroupName: 'Deployer' },
    ]);
    expect((await userItem(SUB))?.roles).toEqual(['Approver', 'Admin']);

    await setEnabled(SUB, false);
    expect(idp.commandCalls(AdminDisableUserCommand).map((c) => c.args[0].input)).toEqual([{ UserPoolId: POOL, Username: 'amy.ops' }]);
    // Refresh tokens die too: a disabled user cannot mint new access tokens.
    expect(idp.commandCalls(AdminUserGlobalSignOutCommand).map((c) => c.args[0].input)).toEqual([{ UserPoolId: POOL, Username: 'amy.ops' }]);
    expect((await userItem(SUB))?.enabled).toBe(false);
    await setEnabled(SUB, true);
    expect(idp.commandCalls(AdminEnableUserCommand).map((c) => c.args[0].input)).toEqual([{ UserPoolId: POOL, Username: 'amy.ops' }]);
    expect((await userItem(SUB))?.enabled).toBe(true);
  });

  it('registers a service client as a pool app client for client credentials with exactly its scopes; the loser of a name race deletes its app client', async () => {
    const { createClient } = await import('../../functions/lib/directory.ts');
    idp.on(CreateUserPoolClientCommand).resolvesOnce({ UserPoolClient: { ClientId: 'app1client', ClientSecret: 's3cret-one' } });
    const { entry, clientSecret } = await createClient('ci-pipeline', ['kmod/deploy'], 'dev-admin');
    expect(idp.commandCalls(CreateUserPoolClientCommand).map((c) => c.args[0].input)).toEqual([
      {
        UserPoolId: POOL,
        ClientName: 'ci-pipeline',
        GenerateSecret: true,
        AllowedOAuthFlows: ['client_credentials'],
        AllowedOAuthFlowsUserPoolClient: true,
        AllowedOAuthScopes: ['kmod/deploy'],
      },
    ]);
    expect([entry.userId, clientSecret]).toEqual(['app1client', 's3cret-one']);
    // Cognito keeps the secret: the directory holds no hash of it.
    expect(await userItem('app1client')).not.toHaveProperty('secretHash');

    // A race the name check cannot see: another admin registers the name while Cognito makes the
    // app client. The directory refuses this one, and its app client is deleted again.
    const { putWithName } = await import('../../functions/lib/directory.ts');
    idp.on(CreateUserPoolClientCommand).callsFake(async () => {
      await putWithName({ ...entry, userId: 'racer-client', username: 'release-bot' });
      return { UserPoolClient: { ClientId: 'app2client', ClientSecret: 's3cret-two' } };
    });
    idp.on(DeleteUserPoolClientCommand).resolves({});
    await expect(createClient('release-bot', ['kmod/deploy'], 'dev-admin')).rejects.toMatchObject({ code: 'AlreadyExists', status: 409 });
    expect(idp.commandCalls(DeleteUserPoolClientCommand).map((c) => c.args[0].input)).toEqual([{ UserPoolId: POOL, ClientId: 'app2client' }]);
    expect(await userItem('app2client')).toBeUndefined();
    expect(await userItem('name#release-bot')).toMatchObject({ holder: 'racer-client' });
  });
});

describe('token verification on AWS: the Cognito branch', () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = 'cognito-test-key';
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const sign = (claims: Record<string, unknown>, key: KeyObject = privateKey) => {
    const head = `${b64({ alg: 'RS256', kid, typ: 'JWT' })}.${b64(claims)}`;
    return `${head}.${createSign('RSA-SHA256').update(head).sign(key).toString('base64url')}`;
  };
  const now = () => Math.floor(Date.now() / 1000);
  const accessToken = (over: Record<string, unknown> = {}) =>
    sign({
      sub: SUB,
      iss: ISSUER,
      client_id: 'webclient1',
      token_use: 'access',
      scope: 'aws.cognito.signin.user.admin',
      'cognito:groups': ['Admin'],
      iat: now() - 5,
      exp: now() + 3600,
      auth_time: now() - 5,
      jti: 'j1',
      username: 'amy.ops',
      ...over,
    });
  const jwksRequests: string[] = [];

  beforeEach(() => {
    vi.resetModules();
    vi.stubEnv('JWT_CLIENT_IDS', 'webclient1');
    vi.stubEnv('DIRECTORY_CACHE_SECONDS', '0');
    jwksRequests.length = 0;
    const jwk = { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
    const realFetch = globalThis.fetch;
    vi.stubGlobal('fetch', async (input: string | URL | Request, init?: RequestInit) => {
      const url = String(input instanceof Request ? input.url : input);
      if (!url.startsWith('https://cognito-idp.')) return realFetch(input, init);
      jwksRequests.push(url);
      return new Response(JSON.stringify({ keys: [jwk] }), { headers: { 'content-type': 'application/json' } });
    });
  });

  it('reads the pool JWKS from Cognito, accepts the pool access token of a directory user with the roles the directory holds', async () => {
    const { verifyBearer } = await import('../../functions/lib/auth.ts');
    const principal = await verifyBearer(`Bearer ${accessToken()}`);
    expect(jwksRequests).toEqual([`${ISSUER}/.well-known/jwks.json`]);
    // The token says Admin; the directory (the earlier test) says Approver and Admin.
    expect(principal).toMatchObject({ userId: SUB, roles: ['Approver', 'Admin'] });
  });

  it('refuses an id token, another pool, another client, a foreign key, and a sub the directory does not know', async () => {
    const { verifyBearer } = await import('../../functions/lib/auth.ts');
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const refused = async (token: string) =>
      verifyBearer(`Bearer ${token}`).then(
        () => 'accepted',
        (e: Error) => e.message,
      );
    expect(await refused(accessToken({ token_use: 'id' }))).toMatch(/not those of an access token/);
    expect(await refused(accessToken({ iss: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other' }))).toMatch(/issuer/i);
    expect(await refused(accessToken({ client_id: 'someone-elses-client' }))).toMatch(/another client/);
    expect(await refused(sign({ sub: SUB, iss: ISSUER, client_id: 'webclient1', token_use: 'access', iat: now(), exp: now() + 60 }, other))).toMatch(
      /signature/i,
    );
    expect(await refused(accessToken({ sub: '00000000-0000-4000-8000-000000000000' }))).not.toBe('accepted');
  });
});
