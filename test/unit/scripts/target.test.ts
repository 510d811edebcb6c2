/**
 * Token sources of a deployed target (scripts/lib/target.ts): which configuration wins for a role,
 * and the Cognito password flow, against a stand-in for Cognito's endpoint speaking its JSON
 * protocol (the real service cannot run here), so the exact request is checked.
 */
import { createServer, type Server } from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DevIssuer } from '../../../localcloud/identity.ts';
import { expiryOf, fetchToken, TokenProvider, tokenSourceFor } from '../../../scripts/lib/target.ts';

describe('which token source a role gets', () => {
  it('takes a literal token first, then client credentials, a Cognito user, the issuer key, a cloud.json', () => {
    const env = {
      KMOD_TARGET_TOKEN_VIEWER: 'jwt-v',
      KMOD_TARGET_TOKEN_URL: 'https://acme-kmod.auth.eu-west-1.amazoncognito.com/oauth2/token',
      KMOD_TARGET_CLIENT_DEPLOYER: 'ci-client:s3cr:et',
      KMOD_TARGET_SCOPE_DEPLOYER: 'kmod/deploy',
      KMOD_TARGET_COGNITO_CLIENT_ID: 'app-client',
      KMOD_TARGET_USER_APPROVER: 'amy:pa:ss',
      AWS_REGION: 'eu-west-1',
      KMOD_TARGET_ISSUER_KEY_FILE: '.localstack/identity/signing-key.json',
      KMOD_TARGET_CLOUD_FILE: '.local/cloud.json',
    };
    expect(tokenSourceFor('Viewer', env)).toEqual({ kind: 'token', token: 'jwt-v' });
    // A secret or password may contain colons: only the first separates.
    expect(tokenSourceFor('Deployer', env)).toEqual({
      kind: 'client-credentials',
      tokenUrl: env.KMOD_TARGET_TOKEN_URL,
      clientId: 'ci-client',
      clientSecret: 's3cr:et',
      scope: 'kmod/deploy',
    });
    expect(tokenSourceFor('Approver', env)).toEqual({ kind: 'password', clientId: 'app-client', username: 'amy', password: 'pa:ss', region: 'eu-west-1' });
    expect(tokenSourceFor('Admin', env)).toEqual({ kind: 'issuer-key', keyFile: '.localstack/identity/signing-key.json' });
    expect(tokenSourceFor('Admin', { KMOD_TARGET_CLOUD_FILE: '.local/cloud.json' })).toEqual({ kind: 'cloud-file', file: '.local/cloud.json' });
    expect(tokenSourceFor('Admin', {})).toBeUndefined();
    expect(() => tokenSourceFor('Deployer', { KMOD_TARGET_TOKEN_URL: 'https://x', KMOD_TARGET_CLIENT_DEPLOYER: 'no-secret' })).toThrow(
      /KMOD_TARGET_CLIENT_DEPLOYER must be <id>:<secret>/,
    );
  });

  it('says what to set for a role without a source, and refuses an issuer key that is not there (a new one would sign tokens nobody trusts)', async () => {
    await expect(new TokenProvider(() => undefined).token('Approver')).rejects.toThrow(/no token source for Approver: set KMOD_TARGET_TOKEN_APPROVER/);
    await expect(fetchToken({ kind: 'issuer-key', keyFile: join(tmpdir(), 'kmod-missing', 'key.json') }, 'Admin')).rejects.toThrow(/no issuer key at/);
  });

  it("mints dev users' tokens with the issuer key, and reads a JWT's expiry", async () => {
    const keyFile = join(mkdtempSync(join(tmpdir(), 'kmod-issuer-')), 'signing-key.json');
    await DevIssuer.load(keyFile);
    const token = await fetchToken({ kind: 'issuer-key', keyFile }, 'Approver');
    const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
    expect(claims).toMatchObject({ sub: 'dev-approver', 'cognito:groups': ['Approver'], token_use: 'access', client_id: 'kmod-local-client' });
    expect(expiryOf(token)).toBe(claims.exp);
    expect(expiryOf('not-a-jwt')).toBeUndefined();
  });
});

describe('the Cognito password flow', () => {
  let server: Server;
  let endpoint: string;
  const requests: { target: string; body: any }[] = [];
  let answer: Record<string, unknown> = {};

  beforeAll(async () => {
    server = createServer(async (req, res) => {
      let body = '';
      for await (const c of req) body += c;
      requests.push({ target: String(req.headers['x-amz-target']), body: JSON.parse(body) });
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(JSON.stringify(answer));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    process.env.AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER = endpoint;
  });
  afterAll(() => {
    delete process.env.AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER;
    server.close();
  });

  it('asks for USER_PASSWORD_AUTH with the secret hash of a client that has a secret, and returns the access token', async () => {
    answer = { AuthenticationResult: { AccessToken: 'access-jwt', IdToken: 'id-jwt', ExpiresIn: 3600, TokenType: 'Bearer' } };
    const token = await fetchToken(
      { kind: 'password', clientId: 'app', clientSecret: 'secret', username: 'amy', password: 'pw', region: 'eu-west-1' },
      'Approver',
    );
    expect(token).toBe('access-jwt');
    expect(requests.at(-1)).toEqual({
      target: 'AWSCognitoIdentityProviderService.InitiateAuth',
      body: {
        AuthFlow: 'USER_PASSWORD_AUTH',
        ClientId: 'app',
        // base64(HMAC-SHA256(secret, username + clientId)), as Cognito defines SECRET_HASH.
        AuthParameters: { USERNAME: 'amy', PASSWORD: 'pw', SECRET_HASH: 'Yr7kDFQCQAw3yMSFYVCilbuSAz2bXXdf7beEQj9CljM=' },
      },
    });
  });

  it('says so, and what to use instead, when Cognito asks for MFA', async () => {
    answer = { ChallengeName: 'SOFTWARE_TOKEN_MFA', Session: 's' };
    await expect(fetchToken({ kind: 'password', clientId: 'app', username: 'amy', password: 'pw', region: 'eu-west-1' }, 'Approver')).rejects.toThrow(
      /Cognito asks amy to answer SOFTWARE_TOKEN_MFA first \(the pool requires MFA\): give Approver a token \(KMOD_TARGET_TOKEN_APPROVER\)/,
    );
  });
});
