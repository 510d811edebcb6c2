import { describe, expect, it } from 'vitest';
import { decide, signLink, verifyLink, type ApprovalState } from '../../functions/domain/approvals.ts';
import { averageMetrics, judgeCanary, planWaves } from '../../functions/domain/canary.ts';
import { planEnvironment } from '../../functions/domain/strategy.ts';

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

describe('approval links', () => {
  const key = { id: 'k1', secret: 's3cret' };
  const claims = { executionId: 'dep-1', environment: 'Staging', approver: 'amy', action: 'approve' as const, exp: Math.floor(now.getTime() / 1000) + 60 };
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

describe('canary', () => {
  it('plans cumulative waves that reach every node', () => {
    expect(planWaves(20, [10, 30, 50, 100])).toEqual([2, 4, 4, 10]);
    expect(planWaves(3, [10, 30, 50, 100])).toEqual([1, 1, 1]);
    expect(planWaves(10_000, [10, 30, 50])).toEqual([1000, 2000, 2000, 5000]);
    expect(() => planWaves(10, [50, 30])).toThrow();
  });

  it('fails a metric only beyond both the relative limit and the minimum absolute change', () => {
    const limits = { errorRatePercent: 50, latencyPercent: 100, cpuPercent: 30, memoryPercent: 30 };
    const min = { errorRatePercent: 0.5, latencyMs: 5, cpuPercent: 5, memoryPercent: 5 };
    const baseline = averageMetrics([{ cpuPercent: 20, memoryPercent: 40, latencyMs: 20, errorRatePercent: 0.4, requestsPerSecond: 100 }]);
    const noisy = averageMetrics([{ cpuPercent: 22, memoryPercent: 41, latencyMs: 22, errorRatePercent: 0.7, requestsPerSecond: 100 }]);
    expect(judgeCanary(baseline, noisy, limits, min).ok).toBe(true); // +75 % error rate but only 0.3 points
    const bad = averageMetrics([{ cpuPercent: 30, memoryPercent: 41, latencyMs: 50, errorRatePercent: 2, requestsPerSecond: 100 }]);
    const v = judgeCanary(baseline, bad, limits, min);
    expect(v.ok).toBe(false);
    expect(v.checks.filter((c) => c.failed).map((c) => c.metric)).toEqual(['errorRatePercent', 'latencyMs', 'cpuPercent']);
    expect(v.summary).toContain('error rate 0.4% → 2% (+400%, limit +50%)');
  });
});

describe('planEnvironment', () => {
  const s = { nodesPerBatch: 3, rollingBatchSize: 2, maxSequentialBatches: 500, canaryWaves: [10, 30, 50, 100] };
  const nodes = Array.from({ length: 10 }, (_, i) => ({ nodeId: `n-${i + 1}`, colour: (i < 5 ? 'blue' : 'green') as 'blue' | 'green' }));
  it('targets the idle colour for blue-green and waves of batches for canary', () => {
    expect(planEnvironment('BlueGreen', nodes, s, 'blue')).toMatchObject({
      activeColour: 'blue',
      idleColour: 'green',
      batches: [
        ['n-6', 'n-7', 'n-8'],
        ['n-9', 'n-10'],
      ],
    });
    const c = planEnvironment('Canary', nodes, s);
    expect(c.waves).toEqual([[0], [1], [2], [3, 4]]);
    expect(c.batches.flat()).toHaveLength(10);
    expect(planEnvironment('Rolling', nodes, s).batches).toHaveLength(5);
    expect(
      planEnvironment(
        'Rolling',
        Array.from({ length: 10_000 }, (_, i) => ({ nodeId: `n${i}` })),
        s,
      ).batches,
    ).toHaveLength(500);
    expect(() => planEnvironment('BlueGreen', nodes.slice(0, 5), s, 'blue')).toThrow(/no green nodes/);
  });
});
