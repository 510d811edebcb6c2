/**
 * Identity, locally: a JWT issuer with a JWKS endpoint whose tokens look like Cognito access
 * tokens (sub, username, cognito:groups, client_id, token_use), verified by the same
 * aws-jwt-verify code that checks Cognito tokens on AWS. Its signing key persists across restarts.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from 'jose';

export const DEV_ISSUER = 'https://dev-issuer.kmod.local';
export const DEV_CLIENT_ID = 'kmod-local-client';

export interface DevUser {
  sub: string;
  username: string;
  groups: string[];
}

export const DEV_USERS: Record<'Admin' | 'Deployer' | 'Viewer' | 'Approver', DevUser> = {
  Admin: { sub: 'dev-admin', username: 'ada.admin', groups: ['Admin'] },
  Deployer: { sub: 'dev-deployer', username: 'dan.deployer', groups: ['Deployer'] },
  Viewer: { sub: 'dev-viewer', username: 'vic.viewer', groups: ['Viewer'] },
  Approver: { sub: 'dev-approver', username: 'amy.approver', groups: ['Approver'] },
};

export class DevIssuer {
  private constructor(
    private readonly privateJwk: JWK,
    readonly publicJwk: JWK,
  ) {}

  static async load(file: string): Promise<DevIssuer> {
    if (existsSync(file)) {
      const saved = JSON.parse(readFileSync(file, 'utf8')) as { privateJwk: JWK; publicJwk: JWK };
      return new DevIssuer(saved.privateJwk, saved.publicJwk);
    }
    const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
    const kid = randomUUID();
    const privateJwk = { ...(await exportJWK(privateKey)), kid, alg: 'RS256' };
    const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify({ privateJwk, publicJwk }), { mode: 0o600 });
    return new DevIssuer(privateJwk, publicJwk);
  }

  get jwks() {
    return { keys: [this.publicJwk] };
  }

  /** A signed access token; `overrides` lets tests make expired, foreign or odd tokens. */
  async mint(user: DevUser, opts: { ttlSeconds?: number; overrides?: Record<string, unknown> } = {}): Promise<string> {
    const key = await importJWK(this.privateJwk, 'RS256');
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({
      sub: user.sub,
      username: user.username,
      'cognito:groups': user.groups,
      client_id: DEV_CLIENT_ID,
      token_use: 'access',
      scope: 'aws.cognito.signin.user.admin',
      iss: DEV_ISSUER,
      iat: now,
      exp: now + (opts.ttlSeconds ?? 12 * 3600),
      jti: randomUUID(),
      ...opts.overrides,
    })
      .setProtectedHeader({ alg: 'RS256', kid: this.publicJwk.kid, typ: 'JWT' })
      .sign(key);
  }
}
