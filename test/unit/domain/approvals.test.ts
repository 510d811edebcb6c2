import { describe, expect, it } from 'vitest';
import { approverStanding, decide, signLink, verifyLink, type ApprovalState } from '../../../functions/domain/approvals.ts';

const base: ApprovalState = { status: 'Pending', requestedBy: 'dan', approvers: ['amy', 'bob'], quorum: 1, deadline: '2030-01-01T00:00:00Z', decisions: [] };
const now = new Date('2029-06-01T00:00:00Z');

describe('decide', () => {
  it('forbids the requester, non-approvers, and late or repeated decisions', () => {
    expect(decide(base, { userId: 'dan', isAdmin: true }, 'approve', undefined, 'api', now)).toMatchObject({
      ok: false,
      httpStatus: 403,
      code: 'SelfApprovalForbidden',
    });
    expect(decide(base, { userId: 'eve', isAdmin: false }, 'approve', undefined, 'api', now)).toMatchObject({
      ok: false,
      httpStatus: 403,
      code: 'NotAnApprover',
    });
    expect(decide(base, { userId: 'amy', isAdmin: false }, 'approve', undefined, 'api', new Date('2031-01-01'))).toMatchObject({ ok: false, httpStatus: 410 });
    expect(decide({ ...base, status: 'Approved' }, { userId: 'amy', isAdmin: false }, 'reject', undefined, 'api', now)).toMatchObject({
      ok: false,
      httpStatus: 409,
    });
  });

  it('lets an admin decide and counts distinct approvals towards the quorum', () => {
    expect(decide(base, { userId: 'root', isAdmin: true }, 'approve', 'ok', 'api', now)).toMatchObject({ ok: true, status: 'Approved', final: true });
    const q2 = { ...base, quorum: 2 };
    const first = decide(q2, { userId: 'amy', isAdmin: false }, 'approve', undefined, 'email', now);
    expect(first).toMatchObject({ ok: true, status: 'Pending', final: false });
    const after = { ...q2, decisions: first.ok ? first.decisions : [] };
    expect(decide(after, { userId: 'amy', isAdmin: false }, 'approve', undefined, 'api', now)).toMatchObject({ ok: false, code: 'AlreadyDecided' });
    expect(decide(after, { userId: 'bob', isAdmin: false }, 'approve', undefined, 'api', now)).toMatchObject({ ok: true, status: 'Approved' });
    expect(decide(after, { userId: 'bob', isAdmin: false }, 'reject', 'no', 'api', now)).toMatchObject({ ok: true, status: 'Rejected', final: true });
  });
});

describe('approverStanding: who may still decide, from the directory and the approver lists now', () => {
  const amy = { userId: 'amy', kind: 'user' as const, username: 'amy.approver', roles: ['Approver' as const], enabled: true };

  it('lets an enabled Approver on the environment list decide, and an Admin whether listed or not', () => {
    expect(approverStanding('amy', amy, ['amy'], 'Staging')).toEqual({ ok: true });
    expect(approverStanding('amy', { ...amy, roles: ['Admin'] }, [], 'Staging')).toEqual({ ok: true });
  });

  it.each([
    ['unknown to the directory', undefined, ['amy'], 'ApproverUnknown', /not in the directory/],
    ['a service client', { ...amy, kind: 'client' as const }, ['amy'], 'ApproverUnknown', /not in the directory/],
    ['disabled', { ...amy, enabled: false }, ['amy'], 'ApproverDisabled', /disabled/],
    ['no longer an Approver or Admin', { ...amy, roles: ['Viewer' as const] }, ['amy'], 'ApproverRoleRevoked', /Approver or Admin role/],
    ['no longer on the list of the environment', amy, ['bob'], 'NotAnApprover', /no longer an approver for Staging/],
  ])('refuses an approver who is %s (403)', (_what, entry, listed, code, message) => {
    expect(approverStanding('amy', entry, listed, 'Staging')).toEqual({ ok: false, httpStatus: 403, code, message: expect.stringMatching(message) });
  });
});

describe('approval links', () => {
  const key = { id: 'k1', secret: 's3cret' };
  const claims = { executionId: 'dep-1', environment: 'Staging', approver: 'amy', action: 'approve' as const, exp: Math.floor(now.getTime() / 1000) + 60 };
  it('refuses a link whose body is JSON but not claims (null, a number, an array)', () => {
    for (const json of ['null', '1', '[]', '"x"'])
      expect(verifyLink(`${Buffer.from(json).toString('base64url')}.x`, [key], now)).toEqual({ ok: false, reason: 'malformed' });
  });

  it('verifies its own links, refuses forged, tampered, foreign-key and expired ones', () => {
    const link = signLink(claims, key);
    expect(verifyLink(link, [key], now)).toMatchObject({ ok: true, claims: { approver: 'amy', action: 'approve' } });
    expect(verifyLink(link, [{ id: 'k2', secret: 'x' }, key], now).ok).toBe(true);
    const [body, mac] = link.split('.');
    const tampered = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(body, 'base64url').toString()), action: 'reject' })).toString('base64url');
    expect(verifyLink(`${tampered}.${mac}`, [key], now)).toMatchObject({ ok: false, reason: 'forged' });
    expect(verifyLink(link, [{ id: 'k1', secret: 'other' }], now)).toMatchObject({ ok: false, reason: 'forged' });
    expect(verifyLink('nonsense', [key], now)).toMatchObject({ ok: false, reason: 'malformed' });
    expect(verifyLink(link, [key], new Date(now.getTime() + 120_000))).toMatchObject({ ok: false, reason: 'expired' });
    expect(signLink(claims, key)).not.toBe(link); // every link has its own nonce
  });
});
