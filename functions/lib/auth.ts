/**
 * Bearer-token verification with aws-jwt-verify: Cognito access tokens on AWS
 * (`COGNITO_USER_POOL_ID`), or any OIDC issuer with a JWKS (`JWT_ISSUER` + `JWT_JWKS_URI`), which
 * is how the local cloud's dev issuer is checked. Both paths read the same claims.
 *
 * The library checks the signature, issuer, expiry and not-before; its customJwtCheck hook runs the
 * product's stricter rules (domain/accessTokens.ts: exp and iat required, iat not in the future,
 * a bounded lifetime, claims type-checked). Who the caller is and what they may do then come from
 * the directory (cached for seconds), never from the token's groups.
 */
import { CognitoJwtVerifier, JwtVerifier } from 'aws-jwt-verify';
import { SimpleJwksCache } from 'aws-jwt-verify/jwk';
import type { JwtPayload } from 'aws-jwt-verify/jwt-model';
import { accessTokenClaimsSchema, checkAccessTokenClaims, principalFor } from '../domain/accessTokens.ts';
import type { Principal } from '../domain/roles.ts';
import { config } from './config.ts';
import { lookupEntry } from './directory.ts';

export { SCOPE_ROLES } from '../domain/accessTokens.ts';

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

function clientIds(): string[] {
  return (process.env.JWT_CLIENT_IDS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** The product's claim rules, as the verifiers' customJwtCheck (a throw refuses the token). */
const strictClaims = ({ payload }: { payload: JwtPayload }) => {
  checkAccessTokenClaims(payload, Date.now() / 1000, {
    maxLifetimeSeconds: config.tokenMaxLifetimeSeconds(),
    clockSkewSeconds: config.tokenClockSkewSeconds(),
  });
};

function build(): Verifier {
  const jwksCache = new SimpleJwksCache({ fetcher });
  if (process.env.COGNITO_USER_POOL_ID) {
    // The client is checked below, against the configured clients and the registered service clients.
    const v = CognitoJwtVerifier.create(
      { userPoolId: process.env.COGNITO_USER_POOL_ID, tokenUse: 'access', clientId: null, customJwtCheck: strictClaims },
      { jwksCache },
    );
    return { verify: (t) => v.verify(t) as Promise<JwtPayload> };
  }
  const issuer = process.env.JWT_ISSUER;
  const jwksUri = process.env.JWT_JWKS_URI;
  if (!issuer || !jwksUri) throw new Error('set COGNITO_USER_POOL_ID, or JWT_ISSUER and JWT_JWKS_URI');
  // token_use must be "access", as for Cognito access tokens (strictClaims checks it); the client is checked below.
  const v = JwtVerifier.create({ issuer, jwksUri, audience: null, customJwtCheck: strictClaims }, { jwksCache });
  return { verify: (t) => v.verify(t) as Promise<JwtPayload> };
}

export async function verifyBearer(authorization: string | undefined): Promise<Principal> {
  const m = /^Bearer\s+([A-Za-z0-9._~+/-]+=*)$/i.exec(authorization?.trim() ?? '');
  if (!m) throw new Error('missing bearer token');
  verifier ??= build();
  // strictClaims has checked them inside verify(); the schema gives them their types.
  const claims = accessTokenClaimsSchema.parse(await verifier.verify(m[1]));
  // Issued to one of our clients: a configured app client, or a registered, enabled service client.
  if (!clientIds().includes(claims.client_id)) {
    const client = await lookupEntry(claims.client_id);
    if (client?.kind !== 'client' || !client.enabled) throw new Error('token was issued to another client');
  }
  // Known to the directory and enabled, with the roles it holds now.
  return principalFor(claims, await lookupEntry(claims.sub));
}
