import { describe, expect, it } from 'vitest';
import { averageMetrics, judgeCanary, planWaves } from '../../../functions/domain/canary.ts';

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
