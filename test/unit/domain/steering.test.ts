import { describe, expect, it } from 'vitest';
import { initialStages, type DeploymentRecord } from '../../../functions/domain/deployment.ts';
import { cancelApplies, gateDecision, pauseApplies, promoteApplies, resumeApplies, type Hold, type Steerable } from '../../../functions/domain/steering.ts';

const t0 = new Date('2026-01-01T00:00:00.000Z');
const at = (s: number) => new Date(t0.getTime() + s * 1000);

function deployment(
  status: DeploymentRecord['status'],
  production: 'Pending' | 'Running' | 'Succeeded' = 'Running',
  extra: Partial<Steerable> = {},
): Steerable {
  const { stageOrder, stages } = initialStages('Production');
  stages.Production.status = production;
  return { executionId: 'dep-000000001-aaaaaaaaaaaa', status, stageOrder, stages, ...extra };
}
const hold = (extra: Partial<Hold> = {}): Hold => ({ requestedBy: 'alice', requestedAt: t0.toISOString(), onDeadline: 'resume', ...extra });

describe('which steering request applies', () => {
  it('cancel: any unfinished deployment; a repeat while it settles drives it again; a finished one is refused with the reason', () => {
    expect(cancelApplies(deployment('Running'))).toEqual({ ok: true, repeat: false });
    expect(cancelApplies(deployment('WaitingForApproval', 'Pending'))).toEqual({ ok: true, repeat: false });
    expect(cancelApplies(deployment('Pending', 'Pending'))).toEqual({ ok: true, repeat: false });
    expect(cancelApplies(deployment('Running', 'Running', { cancellation: { requestedBy: 'bob', requestedAt: t0.toISOString() } }))).toEqual({
      ok: true,
      repeat: true,
    });
    expect(cancelApplies(deployment('Cancelled'))).toMatchObject({ ok: false, code: 'AlreadyCancelled' });
    const done = cancelApplies(deployment('Succeeded', 'Succeeded'));
    expect(done).toMatchObject({ ok: false, code: 'DeploymentFinished' });
    expect(!done.ok && done.message).toContain('roll it back instead');
  });

  it('pause: only a running canary, only once, never while being cancelled', () => {
    expect(pauseApplies(deployment('Running'))).toBeUndefined();
    expect(pauseApplies(deployment('WaitingForApproval', 'Pending'))).toMatchObject({ code: 'NotInCanary' });
    expect(pauseApplies(deployment('WaitingForApproval', 'Pending'))?.message).toContain('its Production canary is Pending');
    expect(pauseApplies(deployment('Running', 'Running', { hold: hold() }))).toMatchObject({ code: 'AlreadyPaused' });
    expect(pauseApplies(deployment('Succeeded', 'Succeeded'))).toMatchObject({ code: 'DeploymentFinished' });
    expect(pauseApplies(deployment('Running', 'Running', { cancellation: { requestedBy: 'bob', requestedAt: t0.toISOString() } }))).toMatchObject({
      code: 'CancelRequested',
    });
    const { stageOrder, stages } = initialStages('QA');
    expect(pauseApplies({ executionId: 'dep-000000001-aaaaaaaaaaaa', status: 'Running', stageOrder, stages })).toMatchObject({
      code: 'NotInCanary',
      message: expect.stringContaining('no environment with a Canary strategy'),
    });
  });

  it('resume: only a paused one', () => {
    expect(resumeApplies(deployment('Running'))).toMatchObject({ code: 'NotPaused' });
    expect(resumeApplies(deployment('Running', 'Running', { hold: hold() }))).toBeUndefined();
  });

  it('promote: a running canary that is not paused; one pending promotion at a time; nothing after a full one', () => {
    expect(promoteApplies(deployment('Running'), 'nextWave')).toBeUndefined();
    expect(promoteApplies(deployment('Running', 'Running', { hold: hold() }), 'nextWave')).toMatchObject({ code: 'Paused' });
    const pending = { requestedBy: 'bob', requestedAt: t0.toISOString(), to: 'nextWave' as const };
    expect(promoteApplies(deployment('Running', 'Running', { promotion: pending }), 'nextWave')).toMatchObject({ code: 'PromotionPending' });
    expect(promoteApplies(deployment('Running', 'Running', { promotion: pending }), 'full')).toBeUndefined();
    expect(promoteApplies(deployment('Running', 'Running', { promotion: { ...pending, consumedByWave: 0 } }), 'nextWave')).toBeUndefined();
    expect(promoteApplies(deployment('Running', 'Running', { promotion: { ...pending, to: 'full' } }), 'nextWave')).toMatchObject({
      code: 'AlreadyPromoted',
    });
    expect(promoteApplies(deployment('WaitingForApproval', 'Pending'), 'full')).toMatchObject({ code: 'NotInCanary' });
  });
});

describe('the canary bake gate', () => {
  const base = { wave: 1, bakeStartedAt: t0, bakeSeconds: 100, pollSeconds: 30 };

  it('bakes in waits of at most the poll interval, the last one up to the end of the bake, then judges', () => {
    expect(gateDecision({ ...base, now: t0 })).toEqual({ action: 'wait', waitSeconds: 30, reason: 'bake' });
    expect(gateDecision({ ...base, now: at(80) })).toEqual({ action: 'wait', waitSeconds: 20, reason: 'bake' });
    expect(gateDecision({ ...base, now: at(99.5) })).toEqual({ action: 'wait', waitSeconds: 1, reason: 'bake' });
    expect(gateDecision({ ...base, now: at(100) })).toEqual({ action: 'judge', promoted: false });
    expect(gateDecision({ ...base, bakeSeconds: 0, now: t0 })).toEqual({ action: 'judge', promoted: false });
  });

  it('a wave short of its minimum of requests bakes on in polls, up to the longest bake, then is judged on what there is', () => {
    const traffic = (requests: number) => ({ requests, minRequests: 1000, maxBakeSeconds: 200 });
    expect(gateDecision({ ...base, now: at(50), traffic: traffic(10) })).toEqual({ action: 'wait', waitSeconds: 30, reason: 'bake' });
    expect(gateDecision({ ...base, now: at(100), traffic: traffic(999) })).toEqual({ action: 'wait', waitSeconds: 30, reason: 'traffic' });
    expect(gateDecision({ ...base, now: at(185), traffic: traffic(999) })).toEqual({ action: 'wait', waitSeconds: 15, reason: 'traffic' });
    expect(gateDecision({ ...base, now: at(100), traffic: traffic(1000) })).toEqual({ action: 'judge', promoted: false });
    expect(gateDecision({ ...base, now: at(200), traffic: traffic(3) })).toEqual({ action: 'judge', promoted: false });
    // A longest bake shorter than the bake itself never shortens it.
    expect(gateDecision({ ...base, now: at(100), traffic: { requests: 3, minRequests: 1000, maxBakeSeconds: 50 } })).toEqual({
      action: 'judge',
      promoted: false,
    });
    // A promotion cuts the wait for traffic short like the bake.
    const promotion = { to: 'nextWave' as const, requestedBy: 'u', requestedAt: t0.toISOString() };
    expect(gateDecision({ ...base, now: at(120), traffic: traffic(3), promotion })).toEqual({ action: 'judge', promoted: true });
  });

  it('a hold keeps the wave waiting past the end of its bake, until its deadline: then resumes (lift) or rolls back, as configured', () => {
    expect(gateDecision({ ...base, now: at(500), hold: hold() })).toEqual({ action: 'wait', waitSeconds: 30, reason: 'hold' });
    const deadline = at(510).toISOString();
    expect(gateDecision({ ...base, now: at(500), hold: hold({ deadline }) })).toEqual({ action: 'wait', waitSeconds: 10, reason: 'hold' });
    expect(gateDecision({ ...base, now: at(510), hold: hold({ deadline }) })).toEqual({ action: 'lift' });
    const abort = gateDecision({ ...base, now: at(511), hold: hold({ deadline, onDeadline: 'rollback' }) });
    expect(abort).toMatchObject({ action: 'abort', code: 'CanaryHoldExpired' });
    expect(abort.action === 'abort' && abort.message).toContain('paused by alice past its deadline');
  });

  it('a hold wins over a promotion; a nextWave promotion cuts one bake short (its own wave, or the next one not yet consumed); a full one skips every judgement', () => {
    const p = { requestedBy: 'bob', requestedAt: t0.toISOString(), to: 'nextWave' as const };
    expect(gateDecision({ ...base, now: at(5), promotion: p })).toEqual({ action: 'judge', promoted: true });
    expect(gateDecision({ ...base, now: at(5), promotion: { ...p, consumedByWave: 1 } })).toEqual({ action: 'judge', promoted: true });
    expect(gateDecision({ ...base, now: at(5), promotion: { ...p, consumedByWave: 0 } })).toEqual({ action: 'wait', waitSeconds: 30, reason: 'bake' });
    expect(gateDecision({ ...base, now: at(5), promotion: { ...p, to: 'full' } })).toEqual({ action: 'skip' });
    expect(gateDecision({ ...base, now: at(5), promotion: p, hold: hold() })).toMatchObject({ action: 'wait', reason: 'hold' });
  });
});
