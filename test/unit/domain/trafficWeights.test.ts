import { describe, expect, it } from 'vitest';
import { planWaves } from '../../../functions/domain/canary.ts';
import { countServed, measuredShare, wavePercents } from '../../../functions/domain/trafficWeights.ts';

describe('traffic-weighted canary', () => {
  it('gives each planned wave the percent that made it, also where a small fleet drops waves', () => {
    expect(wavePercents(20, [10, 30, 50, 100])).toEqual([10, 30, 50, 100]);
    for (const total of [1, 2, 3, 5, 7, 20, 1000]) {
      expect(wavePercents(total, [10, 30, 50, 100])).toHaveLength(planWaves(total, [10, 30, 50, 100]).length);
    }
    expect(wavePercents(2, [10, 30, 50, 100])).toEqual([10, 100]);
    expect(wavePercents(5, [25, 50])).toEqual([25, 50, 100]);
  });

  it('measures the canary share between two readings of the router counts', () => {
    const canary = new Set(['prod-01', 'prod-02']);
    const start = countServed({ 'prod-01': 5, 'prod-02': 5, 'prod-03': 90 }, canary);
    const end = countServed({ 'prod-01': 60, 'prod-02': 55, 'prod-03': 990, 'prod-04': 100 }, canary);
    expect(start).toEqual({ total: 100, canary: 10 });
    expect(measuredShare(10, start, end)).toEqual({ weightPercent: 10, requests: 1105, canaryRequests: 105, measuredPercent: 9.5 });
    expect(measuredShare(30, end, end).measuredPercent).toBeNull();
  });
});
