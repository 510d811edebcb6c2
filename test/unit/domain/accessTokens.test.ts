import { describe, expect, it } from 'vitest';
import { checkAccessTokenClaims, currentSessionRoles, principalFor, type DirectoryPrincipal } from '../../../functions/domain/accessTokens.ts';

const now = 1_900_000_000;
const policy = { maxLifetimeSeconds: 86_400, clockSkewSeconds: 60 };
const good = {
  sub: 'dev-admin',
  username: 'ada.admin',
  'cognito:groups': ['Admin'],
  client_id: 'kmod-local-client',
  token_use: 'access',
  scope: 'aws.cognito.signin.user.admin',
  iss: 'https://dev-issuer.kmod.local',
  iat: now - 10,
  exp: now + 3600,
  jti: 'j1',
};
const without = (name: string) => Object.fromEntries(Object.entries(good).filter(([k]) => k !== name));
const check = (payload: unknown) => () => checkAccessTokenClaims(payload, now, policy);

describe('checkAccessTokenClaims: what a strict verifier refuses', () => {
  it('accepts a well-formed access token (Cognito shape, other claims kept)', () => {
    expect(checkAccessTokenClaims(good, now, policy)).toMatchObject({ sub: 'dev-admin', client_id: 'kmod-local-client', jti: 'j1' });
    // Issued a little in the future (clock skew between issuer and verifier) is fine.
    expect(() => checkAccessTokenClaims({ ...good, iat: now + 30, exp: now + 3600 }, now, policy)).not.toThrow();
    // Exactly the longest lifetime is fine.
    expect(() => checkAccessTokenClaims({ ...good, iat: now, exp: now + 86_400 }, now, policy)).not.toThrow();
  });

  it.each<[string, unknown, RegExp]>([
    ['no exp', without('exp'), /exp/],
    ['exp not a number', { ...good, exp: 'tomorrow' }, /exp/],
    ['no iat', without('iat'), /iat/],
    ['iat a year in the future', { ...good, iat: now + 365 * 86_400, exp: now + 365 * 86_400 + 3600 }, /issued in the future/],
    ['iat just past the skew', { ...good, iat: now + 61, exp: now + 3600 }, /issued in the future/],
    ['exp of 1e15', { ...good, exp: 1e15 }, /lifetime/],
    ['a lifetime of 25 h', { ...good, iat: now, exp: now + 25 * 3600 }, /lifetime/],
    ['exp before iat', { ...good, iat: now, exp: now - 1 }, /exp/],
    ['no sub', without('sub'), /sub/],
    ['an empty sub', { ...good, sub: '' }, /sub/],
    ['a numeric sub', { ...good, sub: 42 }, /sub/],
    ['client_id as an array', { ...good, client_id: ['kmod-local-client'] }, /client_id/],
    ['no client_id', without('client_id'), /client_id/],
    ['aud as an array', { ...good, aud: ['kmod-local-client'] }, /aud/],
    ['aud as a number', { ...good, aud: 7 }, /aud/],
    ['an id token', { ...good, token_use: 'id' }, /token_use/],
    ['groups that are not a list of strings', { ...good, 'cognito:groups': 'Admin' }, /cognito:groups/],
    ['a username that is not a string', { ...good, username: ['ada'] }, /username/],
    ['a payload that is not an object', null, /./],
  ])('refuses %s', (_name, payload, message) => {
    expect(check(payload)).toThrow(message);
  });
});

describe('principalFor: roles come from the directory, never from the token alone', () => {
  const claims = checkAccessTokenClaims(good, now, policy);
  const user: DirectoryPrincipal = { userId: 'dev-admin', kind: 'user', username: 'ada.admin', roles: ['Viewer'], enabled: true };

  it("takes a user's roles from the directory entry, whatever groups the token carries", () => {
    expect(principalFor(claims, user)).toEqual({ userId: 'dev-admin', username: 'ada.admin', roles: ['Viewer'] });
    expect(principalFor(claims, { ...user, roles: ['Approver', 'Admin'] }).roles).toEqual(['Approver', 'Admin']);
  });

  it('refuses a subject the directory does not know, and a disabled one', () => {
    expect(() => principalFor(claims, undefined)).toThrow(/not in the directory/);
    expect(() => principalFor(claims, { ...user, enabled: false })).toThrow(/disabled/);
  });

  it('gives a registered service client the roles of the scopes it was granted and its token asks for', () => {
    const client: DirectoryPrincipal = { userId: 'client-1', kind: 'client', username: 'ci', roles: [], scopes: ['kmod/read'], enabled: true };
    const token = (scope: string, clientId = 'client-1') =>
      checkAccessTokenClaims({ ...good, sub: 'client-1', client_id: clientId, scope, username: undefined, 'cognito:groups': undefined }, now, policy);
    expect(principalFor(token('kmod/read'), client)).toEqual({ userId: 'client-1', username: 'ci', roles: ['Viewer'] });
    // A scope the directory never granted it adds nothing.
    expect(principalFor(token('kmod/read kmod/deploy'), client).roles).toEqual(['Viewer']);
    expect(principalFor(token('openid'), client).roles).toEqual([]);
    // A client's subject with a token issued to another client is not that client.
    expect(() => principalFor(token('kmod/read', 'kmod-local-client'), client)).toThrow(/issued to/);
  });
});

describe('currentSessionRoles (a live WebSocket session asks the directory again)', () => {
  const user = (over: Partial<DirectoryPrincipal> = {}): DirectoryPrincipal => ({
    userId: 'u1',
    kind: 'user',
    username: 'u',
    roles: ['Viewer'],
    enabled: true,
    ...over,
  });
  it('ends a session whose principal is gone or disabled', () => {
    expect(currentSessionRoles(['Viewer'], undefined)).toBeUndefined();
    expect(currentSessionRoles(['Viewer'], user({ enabled: false }))).toBeUndefined();
  });
  it('gives a user the roles held now; a client only the roles it connected with that its scopes still grant', () => {
    expect(currentSessionRoles(['Admin'], user({ roles: ['Viewer'] }))).toEqual(['Viewer']);
    expect(currentSessionRoles(['Viewer'], user({ roles: ['Deployer', 'Bogus' as never] }))).toEqual(['Deployer']);
    const client = user({ kind: 'client', roles: [], scopes: ['kmod/read'] });
    expect(currentSessionRoles(['Viewer', 'Deployer'], client)).toEqual(['Viewer']);
    expect(currentSessionRoles(['Viewer'], { ...client, scopes: [] })).toEqual([]);
  });
});
