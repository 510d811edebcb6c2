import { describe, expect, it } from 'vitest';
import { type Poll, type StabilisationSettings, stabilise, unstableMetrics } from '../../../functions/domain/stabilisation.ts';

const s: StabilisationSettings = {
  minSeconds: 120,
  maxSeconds: 1800,
  pollSeconds: 30,
  polls: 3,
  tolerancePercent: { cpuPercent: 10, memoryPercent: 10, latencyMs: 15 },
};
const poll = (cpuPercent: number, memoryPercent = 40, latencyMs = 20): Poll => ({ cpuPercent, memoryPercent, latencyMs });
const at = (seconds: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, seconds));

describe('stabilisation', () => {
  it('needs the configured number of polls, each within its tolerance of their mean', () => {
    expect(unstableMetrics([poll(25), poll(25)], s)).toEqual(['cpuPercent', 'memoryPercent', 'latencyMs']);
    expect(unstableMetrics([poll(25), poll(26), poll(24)], s)).toEqual([]);
    // CPU 20 → 25 → 30: mean 25, 30 is 20 % off (> 10 %). Latency 20 → 23 → 20 (mean 21, 9.5 % off: within 15 %).
    expect(unstableMetrics([poll(20, 40, 20), poll(25, 40, 23), poll(30, 40, 20)], s)).toEqual(['cpuPercent']);
    // Only the last `polls` count: an early spike is forgotten.
    expect(unstableMetrics([poll(90), poll(25), poll(25), poll(25)], s)).toEqual([]);
  });

  it('waits at least the minimum even when stable at once, then judges stable', () => {
    let d = stabilise(undefined, poll(25), at(0), s);
    expect(d).toMatchObject({ action: 'wait', waitSeconds: 30 });
    let state = d.action === 'wait' ? d.state : undefined;
    for (const t of [30, 60, 90]) {
      d = stabilise(state, poll(25), at(t), s);
      expect(d.action, `at ${t}s`).toBe('wait');
      state = d.action === 'wait' ? d.state : undefined;
    }
    // Stable since the third poll; the minimum (120 s) is what it waits for.
    expect(d).toMatchObject({ action: 'wait', waitSeconds: 30, unstable: [] });
    expect(stabilise(state, poll(25), at(120), s)).toEqual({ action: 'judge', stable: true, waitedSeconds: 120, pollCount: 5, unstable: [] });
  });

  it('keeps waiting while a metric moves, and judges at the maximum marked not stable', () => {
    let state: Parameters<typeof stabilise>[0];
    let t = 0;
    let last: ReturnType<typeof stabilise> | undefined;
    for (let i = 0; i < 100 && last?.action !== 'judge'; i++) {
      last = stabilise(state, poll(i % 2 ? 20 : 40), at(t), s); // CPU swings 20 ↔ 40 forever
      if (last.action === 'wait') {
        state = last.state;
        t += last.waitSeconds;
      }
    }
    expect(last).toMatchObject({ action: 'judge', stable: false, waitedSeconds: 1800, unstable: ['cpuPercent'] });
    expect(last?.action === 'judge' && last.pollCount).toBe(61);
  });

  it('never waits past the maximum, nor less than a second', () => {
    const near = { startedAt: at(0).toISOString(), pollCount: 10, recent: [poll(20), poll(40)] };
    expect(stabilise(near, poll(30), at(1790), s)).toMatchObject({ action: 'wait', waitSeconds: 10 });
    const tiny = { ...s, minSeconds: 0.2, maxSeconds: 0.5, pollSeconds: 0.1 };
    expect(stabilise(undefined, poll(25), at(0), tiny)).toMatchObject({ action: 'wait', waitSeconds: 1 });
  });
});
