/**
 * Enrolment tokens, pure parts: how a token looks, how its secret is stored (SHA-256 only; the
 * token is shown once) and whether a stored token may still enrol a host.
 *
 *   kmod-enrol.<tokenId>.<secret>     tokenId `et-` + 16 hex, secret 32 random bytes base64url
 *
 * The secret is high-entropy, so a plain SHA-256 is enough (no password stretching needed).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

const TOKEN = /^kmod-enrol\.(et-[a-f0-9]{16})\.([A-Za-z0-9_-]{43})$/;
export const TOKEN_ID = /^et-[a-f0-9]{16}$/;

export interface EnrolmentTokenRecord {
  tokenId: string;
  environment: string;
  secretHash: string;
  createdAt: string;
  createdBy: string;
  /** Epoch seconds; also the table's TTL attribute, so expired tokens disappear by themselves. */
  expiresAt: number;
  maxUses: number;
  uses: number;
  labels: Record<string, string>;
  revokedAt?: string;
  revokedBy?: string;
}

export type TokenState = 'Active' | 'Expired' | 'Revoked' | 'UsedUp';

export function newEnrolmentToken(): { tokenId: string; secret: string; token: string } {
  const tokenId = `et-${randomBytes(8).toString('hex')}`;
  const secret = randomBytes(32).toString('base64url');
  return { tokenId, secret, token: `kmod-enrol.${tokenId}.${secret}` };
}

export function parseEnrolmentToken(token: string): { tokenId: string; secret: string } | undefined {
  const m = TOKEN.exec(token);
  return m ? { tokenId: m[1], secret: m[2] } : undefined;
}

export const hashSecret = (secret: string): string => createHash('sha256').update(secret).digest('hex');

export function secretMatches(secret: string, storedHash: string): boolean {
  const given = Buffer.from(hashSecret(secret), 'hex');
  const stored = Buffer.from(storedHash, 'hex');
  return given.length === stored.length && timingSafeEqual(given, stored);
}

/** Revoked wins over expired, expired over used up: the most deliberate reason is reported. */
export function tokenState(t: Pick<EnrolmentTokenRecord, 'expiresAt' | 'maxUses' | 'uses' | 'revokedAt'>, now = Date.now()): TokenState {
  if (t.revokedAt) return 'Revoked';
  if (t.expiresAt * 1000 <= now) return 'Expired';
  if (t.uses >= t.maxUses) return 'UsedUp';
  return 'Active';
}

/** Why a token cannot enrol, as the HTTP answer: unknown or wrong secret 401, spent tokens 410. */
export function enrolmentRefusal(state: Exclude<TokenState, 'Active'> | 'Invalid'): { status: number; code: string; message: string } {
  switch (state) {
    case 'Invalid':
      return { status: 401, code: 'InvalidEnrolmentToken', message: 'the enrolment token is not valid' };
    case 'Revoked':
      return { status: 410, code: 'EnrolmentTokenRevoked', message: 'the enrolment token was revoked' };
    case 'Expired':
      return { status: 410, code: 'EnrolmentTokenExpired', message: 'the enrolment token has expired' };
    case 'UsedUp':
      return { status: 410, code: 'EnrolmentTokenUsedUp', message: 'the enrolment token has been used as often as it allows' };
  }
}
