import { describe, expect, it } from 'vitest';
import { enrolmentRefusal, hashSecret, newEnrolmentToken, parseEnrolmentToken, secretMatches, tokenState } from '../../../functions/domain/enrolment.ts';

describe('enrolment tokens', () => {
  it('are high-entropy, parse back into id and secret, and differ every time', () => {
    const t = newEnrolmentToken();
    expect(t.token).toMatch(/^kmod-enrol\.et-[a-f0-9]{16}\.[A-Za-z0-9_-]{43}$/);
    expect(parseEnrolmentToken(t.token)).toEqual({ tokenId: t.tokenId, secret: t.secret });
    expect(Buffer.from(t.secret, 'base64url')).toHaveLength(32);
    expect(newEnrolmentToken().token).not.toBe(t.token);
  });

  it('refuses anything not shaped like a token', () => {
    const t = newEnrolmentToken();
    for (const bad of ['', 'kmod-enrol', t.token.slice(0, -1), `${t.token}x`, t.token.replace('kmod-enrol', 'kmod-enroll'), ` ${t.token}`])
      expect(parseEnrolmentToken(bad), bad).toBeUndefined();
  });

  it('are stored as the SHA-256 of the secret and checked against it', () => {
    const t = newEnrolmentToken();
    const stored = hashSecret(t.secret);
    expect(stored).toMatch(/^[a-f0-9]{64}$/);
    expect(stored).not.toContain(t.secret);
    expect(secretMatches(t.secret, stored)).toBe(true);
    expect(secretMatches(newEnrolmentToken().secret, stored)).toBe(false);
    expect(secretMatches(t.secret, 'not-hex')).toBe(false);
  });

  it('are Active until revoked, expired or used up (revoked wins, then expired)', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    const base = { expiresAt: now / 1000 + 60, maxUses: 2, uses: 1 };
    expect(tokenState(base, now)).toBe('Active');
    expect(tokenState({ ...base, uses: 2 }, now)).toBe('UsedUp');
    expect(tokenState({ ...base, expiresAt: now / 1000 }, now)).toBe('Expired');
    expect(tokenState({ ...base, uses: 2, expiresAt: now / 1000 - 1 }, now)).toBe('Expired');
    expect(tokenState({ ...base, uses: 2, expiresAt: 0, revokedAt: '2025-12-31T00:00:00Z' }, now)).toBe('Revoked');
  });

  it('answer 401 when invalid and 410 when spent', () => {
    expect(enrolmentRefusal('Invalid')).toMatchObject({ status: 401, code: 'InvalidEnrolmentToken' });
    expect(enrolmentRefusal('Expired')).toMatchObject({ status: 410, code: 'EnrolmentTokenExpired' });
    expect(enrolmentRefusal('Revoked')).toMatchObject({ status: 410, code: 'EnrolmentTokenRevoked' });
    expect(enrolmentRefusal('UsedUp')).toMatchObject({ status: 410, code: 'EnrolmentTokenUsedUp' });
  });
});
