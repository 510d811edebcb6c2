import { describe, expect, it } from 'vitest';
import { leaseSeconds } from '../../../functions/domain/locks.ts';

describe('leaseSeconds', () => {
  const now = new Date('2026-12-01T10:00:00Z');

  it('is one step when nothing waits after the step', () => {
    expect(leaseSeconds(1200, {}, now)).toBe(1200);
    expect(leaseSeconds(1200, undefined, now)).toBe(1200);
  });

  it('adds the canary bake that follows a wave', () => {
    expect(leaseSeconds(1200, { bakeSeconds: 900 }, now)).toBe(2100);
  });

  it("runs to an approval gate's deadline plus one step, not the approval timeout plus an hour", () => {
    const deadline = new Date(now.getTime() + 86_400_000);
    expect(leaseSeconds(1200, { gateDeadline: deadline }, now)).toBe(86_400 + 1200);
    // Renewed later in the same wait (a retried gate): only what is left of the wait counts.
    expect(leaseSeconds(1200, { gateDeadline: deadline }, new Date(deadline.getTime() - 60_000))).toBe(60 + 1200);
  });

  it('never counts a deadline already passed', () => {
    expect(leaseSeconds(1200, { gateDeadline: new Date(now.getTime() - 5000) }, now)).toBe(1200);
  });

  it('rounds a partial second up, so the lease never ends before the deadline', () => {
    expect(leaseSeconds(10, { gateDeadline: new Date(now.getTime() + 1500) }, now)).toBe(12);
  });
});
