/**
 * Bearer-token verification with aws-jwt-verify: Cognito access tokens on AWS
 * (`COGNITO_USER_POOL_ID`), or any OIDC issuer with a JWKS (`JWT_ISSUER` + `JWT_JWKS_URI`), which
 * is how the local cloud's dev issuer is checked. Both paths read the same claims.
 */
import { CognitoJwtVerifier, JwtVerifier } from 'aws-jwt-verify';
import { SimpleJwksCache } from 'aws-jwt-verify/jwk';
import type { JwtPayload } from 'aws-jwt-verify/jwt-model';
import { ROLES, type Principal, type Role } from '../domain/roles.ts';
import { getEntry } from './directory.ts';

/** Fetches JWKS with the platform fetch, so an http:// JWKS (local cloud) works as https does. */
const fetcher = {
  fetch: async (uri: string) => {
    const r = await fetch(uri, { signal: AbortSignal.timeout(3000) });
    if (!r.ok) throw new Error(`JWKS fetch failed: HTTP ${r.status}`);
    return r.arrayBuffer();
  },
};

interface Verifier {
  verify(token: string): Promise<JwtPayload>;
}

let verifier: Verifier | undefined;

/** OAuth scopes of service clients (resource server `kmod`) and the role each grants. */
export const SCOPE_ROLES: Record<string, Role> = { 'kmod/deploy': 'Deployer', 'kmod/read': 'Viewer' };

function clientIds(): string[] {
  return (process.env.JWT_CLIENT_IDS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function build(): Verifier {
  const jwksCache = new SimpleJwksCache({ fetcher });
  if (process.env.COGNITO_USER_POOL_ID) {
    // The client is checked below, against the configured clients and the registered service clients.
    const v = CognitoJwtVerifier.create({ userPoolId: process.env.COGNITO_USER_POOL_ID, tokenUse: 'access', clientId: null }, { jwksCache });
    return { verify: (t) => v.verify(t) as Promise<JwtPayload> };
  }
  const issuer = process.env.JWT_ISSUER;
  const jwksUri = process.env.JWT_JWKS_URI;
  if (!issuer || !jwksUri) throw new Error('set COGNITO_USER_POOL_ID, or JWT_ISSUER and JWT_JWKS_URI');
  const v = JwtVerifier.create(
    {
      issuer,
      jwksUri,
      audience: null,
      // Same rule as Cognito access tokens: token_use is "access" (the client is checked below).
      customJwtCheck: ({ payload }) => {
        if (payload.token_use !== 'access') throw new Error('not an access token');
      },
    },
    { jwksCache },
  );
  return { verify: (t) => v.verify(t) as Promise<JwtPayload> };
}

export async function verifyBearer(authorization: string | undefined): Promise<Principal> {
  const m = /^Bearer\s+([A-Za-z0-9._~+/-]+=*)$/i.exec(authorization?.trim() ?? '');
  if (!m) throw new Error('missing bearer token');
  verifier ??= build();
  const payload = await verifier.verify(m[1]);
  // Issued to one of our clients: a configured app client, or a registered, enabled service client.
  const clientId = String(payload.client_id ?? '');
  if (!clientIds().includes(clientId)) {
    const client = await getEntry(clientId);
    if (client?.kind !== 'client' || !client.enabled) throw new Error('token was issued to another client');
  }
  // A disabled principal is refused at once, whatever its token's lifetime.
  const entry = await getEntry(String(payload.sub));
  if (entry && !entry.enabled) throw new Error('the principal is disabled');
  const groups = (payload['cognito:groups'] as string[] | undefined) ?? [];
  // Service principals (client-credentials tokens) carry scopes, not groups.
  const scopes = String(payload.scope ?? '').split(' ');
  const scopeRoles = Object.entries(SCOPE_ROLES).flatMap(([scope, role]) => (scopes.includes(scope) ? [role] : []));
  return {
    userId: String(payload.sub),
    username: String(payload.username ?? payload.client_id ?? payload.sub),
    roles: [...new Set([...groups.filter((g): g is Role => (ROLES as readonly string[]).includes(g)), ...scopeRoles])],
  };
}
