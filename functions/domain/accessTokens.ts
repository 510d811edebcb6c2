/**
 * What a bearer token must say before anyone is let in, and who it lets in. Plain logic, no AWS:
 * lib/auth.ts runs these checks inside aws-jwt-verify (its customJwtCheck hook), after the
 * library has checked the signature, the issuer, expiry and not-before.
 *
 * The token only says who the caller is; what they may do comes from the directory, as it is now.
 */
import { z } from 'zod';
import { ROLES, type Principal, type Role } from './roles.ts';

/** OAuth scopes of service clients (resource server `kmod`) and the role each grants. */
export const SCOPE_ROLES: Record<string, Role> = { 'kmod/deploy': 'Deployer', 'kmod/read': 'Viewer' };

export interface TokenPolicy {
  /** Longest accepted exp − iat (Cognito access tokens live 5 min to 24 h). */
  maxLifetimeSeconds: number;
  /** How far in the future iat may be (the issuer's clock may run a little ahead). */
  clockSkewSeconds: number;
}

const id = z.string().min(1).max(256);

/** Cognito access-token claims (and the local issuer's, which mimic them), type-checked. */
export const accessTokenClaimsSchema = z.looseObject({
  sub: id,
  exp: z.number().int(),
  iat: z.number().int(),
  client_id: id,
  aud: id.optional(),
  token_use: z.literal('access'),
  scope: z.string().max(4096).optional(),
  username: z.string().max(256).optional(),
  'cognito:groups': z.array(z.string().max(256)).max(100).optional(),
});
export type AccessTokenClaims = z.infer<typeof accessTokenClaimsSchema>;

/** The claims of a verified token, or an error saying what is wrong with them. */
export function checkAccessTokenClaims(payload: unknown, nowSeconds: number, policy: TokenPolicy): AccessTokenClaims {
  const parsed = accessTokenClaimsSchema.safeParse(payload);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'payload'}: ${i.message}`).join('; ');
    throw new Error(`the token's claims are not those of an access token (${problems})`);
  }
  const claims = parsed.data;
  if (claims.iat > nowSeconds + policy.clockSkewSeconds) throw new Error('the token was issued in the future (iat)');
  if (claims.exp <= claims.iat) throw new Error('the token expires before it was issued (exp ≤ iat)');
  if (claims.exp - claims.iat > policy.maxLifetimeSeconds) {
    throw new Error(`the token's lifetime (exp − iat) exceeds ${policy.maxLifetimeSeconds} s`);
  }
  return claims;
}

/** A directory entry as far as authorisation cares (lib/directory.ts DirectoryEntry). */
export interface DirectoryPrincipal {
  userId: string;
  kind: 'user' | 'client';
  username: string;
  roles: readonly Role[];
  scopes?: readonly string[];
  enabled: boolean;
}

const knownRoles = (roles: readonly string[]) => roles.filter((r): r is Role => (ROLES as readonly string[]).includes(r));

/**
 * The caller a token names, with the roles the directory gives them now: a user's roles; a service
 * client's, from the scopes it was granted and its token asks for. The token's own groups count
 * for nothing, and a subject the directory does not know gets nothing.
 */
export function principalFor(claims: AccessTokenClaims, subject: DirectoryPrincipal | undefined): Principal {
  if (!subject) throw new Error('the token subject is not in the directory');
  if (!subject.enabled) throw new Error('the principal is disabled');
  if (subject.kind === 'user') return { userId: subject.userId, username: subject.username, roles: [...new Set(knownRoles(subject.roles))] };
  // A service client's own (client-credentials) token: its sub is its client id.
  if (claims.client_id !== subject.userId) throw new Error('a service client may only use a token issued to it');
  const asked = (claims.scope ?? '').split(' ');
  const granted = (subject.scopes ?? []).filter((s) => asked.includes(s));
  return {
    userId: subject.userId,
    username: subject.username,
    roles: [...new Set(granted.flatMap((s) => (SCOPE_ROLES[s] ? [SCOPE_ROLES[s]] : [])))],
  };
}

/**
 * The roles a long-lived session (an operator's WebSocket) holds now, from the directory as it is
 * now: none when the principal is gone or disabled (the session must end), a user's current roles,
 * and for a service client the roles it connected with that its scopes still grant (a client's
 * roles come from its token's scopes, which a session cannot widen).
 */
export function currentSessionRoles(connectedWith: readonly string[], subject: DirectoryPrincipal | undefined): Role[] | undefined {
  if (!subject?.enabled) return undefined;
  if (subject.kind === 'user') return [...new Set(knownRoles(subject.roles))];
  const granted = new Set((subject.scopes ?? []).flatMap((s) => (SCOPE_ROLES[s] ? [SCOPE_ROLES[s]] : [])));
  return [...new Set(connectedWith)].filter((r): r is Role => granted.has(r as Role));
}
