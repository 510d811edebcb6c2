import { afterEach, describe, expect, it } from 'vitest';
import { spreadBatches, VERIFY_BATCHES_PER_CALL, verifyGroups } from '../../functions/handlers/tasks/stabiliseBatches.ts';
import { pollStability, stabilisationDetail } from '../../functions/lib/stabilisation.ts';
import type { MetricsReport } from '../../functions/agent/protocol.ts';

const report = (latencyMs: number) => ({ cpuPercent: 40, memoryPercent: 50, latencyMs, errorRatePercent: 0, requestsPerSecond: 10 }) as MetricsReport;

describe('the batches polled and verified after an environment-wide stabilisation', () => {
  it('spreads the sample over the first, last and evenly spaced batches', () => {
    expect(spreadBatches(3, 4)).toEqual([0, 1, 2]);
    expect(spreadBatches(100, 4)).toEqual([0, 33, 66, 99]);
    expect(spreadBatches(0, 4)).toEqual([]);
  });
  it('checks every batch exactly once, two a call', () => {
    expect(VERIFY_BATCHES_PER_CALL).toBe(2);
    expect(verifyGroups(5)).toEqual([[0, 1], [2, 3], [4]]);
    expect(verifyGroups(100).flat()).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(verifyGroups(0)).toEqual([]);
  });
});

describe('pollStability (the one mechanism for canary judgements and health checks)', () => {
  const saved = { ...process.env };
  afterEach(() => {
    process.env = { ...saved };
  });
  it('waits while latency moves, goes on once three polls agree after the minimum, and reports the wait', () => {
    Object.assign(process.env, { STABILISE_MIN_SECONDS: '5', STABILISE_MAX_SECONDS: '60', STABILISE_POLL_SECONDS: '2', STABILISE_POLLS: '3' });
    const t0 = new Date('2026-01-01T00:00:00Z');
    const at = (s: number) => new Date(t0.getTime() + s * 1000);
    let d = pollStability(null, [report(10), report(30)], at(0));
    expect(d).toMatchObject({ action: 'wait', waitSeconds: 2 });
    if (d.action !== 'wait') throw new Error('expected wait');
    d = pollStability(d.state, [report(60)], at(2));
    if (d.action !== 'wait') throw new Error('expected wait');
    expect(d.unstable).toContain('latencyMs');
    for (const [s, lat] of [
      [4, 20],
      [6, 21],
      [8, 20],
    ] as const) {
      d = pollStability(d.state, [report(lat)], at(s));
      if (d.action === 'judge') break;
    }
    expect(d.action).toBe('judge');
    if (d.action !== 'judge') throw new Error('expected judge');
    expect(stabilisationDetail(d)).toEqual({ stable: true, waitedSeconds: 8, polls: 5, unstable: [] });
  });
  it('gives up at the maximum, marked not stable', () => {
    Object.assign(process.env, { STABILISE_MIN_SECONDS: '1', STABILISE_MAX_SECONDS: '3', STABILISE_POLL_SECONDS: '1', STABILISE_POLLS: '3' });
    const t0 = Date.parse('2026-01-01T00:00:00Z');
    let d = pollStability(undefined, [report(10)], new Date(t0));
    for (let s = 1; d.action === 'wait'; s++) d = pollStability(d.state, [report(10 * 2 ** s)], new Date(t0 + s * 1000));
    expect(stabilisationDetail(d as Extract<typeof d, { action: 'judge' }>)).toEqual({ stable: false, waitedSeconds: 3, polls: 4, unstable: ['latencyMs'] });
  });
});
