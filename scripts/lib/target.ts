/**
 * A deployed API as a test target: where it is, and how to get a bearer token for each role. Used
 * by the end-to-end suite (test/e2e/target.ts) and the post-deploy smoke check (scripts/smoke.ts).
 *
 * Token sources, per role (the first that is configured wins):
 *
 *   KMOD_TARGET_TOKEN_<ROLE>=<jwt>                          a token as it is
 *   KMOD_TARGET_TOKEN_URL=<oauth2 token endpoint>           client credentials (Cognito's
 *   KMOD_TARGET_CLIENT_<ROLE>=<client id>:<client secret>     https://<domain>/oauth2/token, or the
 *   [KMOD_TARGET_SCOPE_<ROLE>=kmod/deploy]                    local cloud's /_local/identity/oauth2/token)
 *   KMOD_TARGET_COGNITO_CLIENT_ID=<app client id>           Cognito USER_PASSWORD_AUTH (an app client
 *   [KMOD_TARGET_COGNITO_CLIENT_SECRET=<secret>]              that allows it; not the stack's SRP-only
 *   KMOD_TARGET_USER_<ROLE>=<username>:<password>             web client), region from AWS_REGION
 *   KMOD_TARGET_ISSUER_KEY_FILE=<signing-key.json>          the local dev issuer's key (the LocalStack
 *                                                             path): tokens for the dev users
 *   KMOD_TARGET_CLOUD_FILE=<.local/cloud.json>              a running local cloud's ready tokens
 *
 * <ROLE> is ADMIN, DEPLOYER, VIEWER or APPROVER.
 */
import { createHmac } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { CognitoIdentityProviderClient, InitiateAuthCommand } from '@aws-sdk/client-cognito-identity-provider';
import { DEV_USERS, DevIssuer } from '../../localcloud/identity.ts';

export const TARGET_ROLES = ['Admin', 'Deployer', 'Viewer', 'Approver'] as const;
export type TargetRole = (typeof TARGET_ROLES)[number];

export type TokenSource =
  | { kind: 'token'; token: string }
  | { kind: 'client-credentials'; tokenUrl: string; clientId: string; clientSecret: string; scope?: string }
  | { kind: 'password'; clientId: string; clientSecret?: string; username: string; password: string; region?: string }
  | { kind: 'issuer-key'; keyFile: string }
  | { kind: 'cloud-file'; file: string };

type Env = Record<string, string | undefined>;

/** `a:b` split at the first colon (secrets and passwords may contain colons). */
function pair(value: string, what: string): [string, string] {
  const i = value.indexOf(':');
  if (i <= 0) throw new Error(`${what} must be <id>:<secret>`);
  return [value.slice(0, i), value.slice(i + 1)];
}

/** The token source configured for a role, or undefined. */
export function tokenSourceFor(role: TargetRole, env: Env = process.env): TokenSource | undefined {
  const R = role.toUpperCase();
  const token = env[`KMOD_TARGET_TOKEN_${R}`];
  if (token) return { kind: 'token', token };
  const client = env[`KMOD_TARGET_CLIENT_${R}`];
  if (client && env.KMOD_TARGET_TOKEN_URL) {
    const [clientId, clientSecret] = pair(client, `KMOD_TARGET_CLIENT_${R}`);
    return { kind: 'client-credentials', tokenUrl: env.KMOD_TARGET_TOKEN_URL, clientId, clientSecret, scope: env[`KMOD_TARGET_SCOPE_${R}`] };
  }
  const user = env[`KMOD_TARGET_USER_${R}`];
  if (user && env.KMOD_TARGET_COGNITO_CLIENT_ID) {
    const [username, password] = pair(user, `KMOD_TARGET_USER_${R}`);
    return {
      kind: 'password',
      clientId: env.KMOD_TARGET_COGNITO_CLIENT_ID,
      clientSecret: env.KMOD_TARGET_COGNITO_CLIENT_SECRET,
      username,
      password,
      region: env.AWS_REGION ?? env.AWS_DEFAULT_REGION,
    };
  }
  if (env.KMOD_TARGET_ISSUER_KEY_FILE) return { kind: 'issuer-key', keyFile: env.KMOD_TARGET_ISSUER_KEY_FILE };
  if (env.KMOD_TARGET_CLOUD_FILE) return { kind: 'cloud-file', file: env.KMOD_TARGET_CLOUD_FILE };
  return undefined;
}

/** Seconds since the epoch at which a JWT expires (its `exp`), if it says. */
export function expiryOf(jwt: string): number | undefined {
  try {
    const exp = (JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8')) as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp : undefined;
  } catch {
    return undefined;
  }
}

/** A fresh access token for a role from its source. */
export async function fetchToken(source: TokenSource, role: TargetRole): Promise<string> {
  switch (source.kind) {
    case 'token':
      return source.token;
    case 'cloud-file': {
      const tokens = (JSON.parse(readFileSync(source.file, 'utf8')) as { tokens?: Partial<Record<TargetRole, string>> }).tokens;
      const token = tokens?.[role];
      if (!token) throw new Error(`${source.file} holds no ${role} token`);
      return token;
    }
    case 'issuer-key':
      // DevIssuer.load would make a new key for a missing file: tokens nobody trusts.
      if (!existsSync(source.keyFile)) throw new Error(`no issuer key at ${source.keyFile} (npm run localstack:deploy creates it)`);
      return (await DevIssuer.load(source.keyFile)).mint(DEV_USERS[role], { ttlSeconds: 3600 });
    case 'client-credentials': {
      // RFC 6749 client_secret_basic, as Cognito's token endpoint expects.
      const basic = Buffer.from(`${encodeURIComponent(source.clientId)}:${encodeURIComponent(source.clientSecret)}`).toString('base64');
      const form = new URLSearchParams({ grant_type: 'client_credentials', ...(source.scope ? { scope: source.scope } : {}) });
      const r = await fetch(source.tokenUrl, {
        method: 'POST',
        headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
        body: form,
        signal: AbortSignal.timeout(10_000),
      });
      const body = (await r.json().catch(() => ({}))) as { access_token?: string; error?: string; error_description?: string };
      if (!r.ok || !body.access_token)
        throw new Error(
          `client credentials for ${role} refused by ${source.tokenUrl}: HTTP ${r.status} ${body.error ?? ''} ${body.error_description ?? ''}`.trim(),
        );
      return body.access_token;
    }
    case 'password': {
      const idp = new CognitoIdentityProviderClient(source.region ? { region: source.region } : {});
      try {
        const secretHash = source.clientSecret
          ? createHmac('sha256', source.clientSecret)
              .update(source.username + source.clientId)
              .digest('base64')
          : undefined;
        const r = await idp.send(
          new InitiateAuthCommand({
            AuthFlow: 'USER_PASSWORD_AUTH',
            ClientId: source.clientId,
            AuthParameters: { USERNAME: source.username, PASSWORD: source.password, ...(secretHash ? { SECRET_HASH: secretHash } : {}) },
          }),
        );
        if (r.ChallengeName)
          throw new Error(
            `Cognito asks ${source.username} to answer ${r.ChallengeName} first (the pool requires MFA): give ${role} a token (KMOD_TARGET_TOKEN_${role.toUpperCase()}) or a service client instead`,
          );
        if (!r.AuthenticationResult?.AccessToken) throw new Error(`Cognito returned no access token for ${source.username}`);
        return r.AuthenticationResult.AccessToken;
      } finally {
        idp.destroy();
      }
    }
  }
}

/** Tokens per role, fetched once and again a minute before they expire. */
export class TokenProvider {
  private readonly cache = new Map<TargetRole, { token: string; exp?: number }>();

  constructor(private readonly sourceFor: (role: TargetRole) => TokenSource | undefined) {}

  has(role: TargetRole): boolean {
    return this.sourceFor(role) !== undefined;
  }

  async token(role: TargetRole): Promise<string> {
    const cached = this.cache.get(role);
    if (cached && (cached.exp === undefined || cached.exp - 60 > Date.now() / 1000)) return cached.token;
    const source = this.sourceFor(role);
    if (!source)
      throw new Error(
        `no token source for ${role}: set KMOD_TARGET_TOKEN_${role.toUpperCase()}, or KMOD_TARGET_CLIENT_${role.toUpperCase()} with KMOD_TARGET_TOKEN_URL, or see scripts/lib/target.ts`,
      );
    const token = await fetchToken(source, role);
    this.cache.set(role, { token, exp: expiryOf(token) });
    return token;
  }
}

/** The API base URL without a trailing slash (API Gateway's stage URL ends in one). */
export const apiBase = (url: string) => url.replace(/\/+$/, '');
