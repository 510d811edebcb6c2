import { describe, expect, it } from 'vitest';
import { percentile, percentileOfSorted, perRequest } from '../../../scripts/lib/stats.ts';

describe('nearest-rank percentiles (the benchmarks)', () => {
  it('takes the value at rank ceil(p/100 × n), whatever the input order', () => {
    const xs = [7, 1, 10, 3, 9, 2, 8, 4, 6, 5];
    expect(percentile(xs, 50)).toBe(5);
    expect(percentile(xs, 95)).toBe(10);
    expect(percentile(xs, 10)).toBe(1);
    expect(percentileOfSorted([1, 2, 3, 4], 99)).toBe(4);
    expect(xs[0]).toBe(7); // the input is not sorted in place
  });
  it('has no percentile of nothing', () => {
    expect(percentileOfSorted([], 50)).toBeUndefined();
    expect(percentile([], 50)).toBeNaN();
  });
});

describe('calls per request (npm run load)', () => {
  it('prints two decimals, and a call too rare for them as <0.01 rather than 0.00', () => {
    expect(perRequest(516, 516)).toBe('1.00');
    expect(perRequest(1030, 516)).toBe('2.00');
    expect(perRequest(0, 516)).toBe('0.00');
    expect(perRequest(2, 516)).toBe('<0.01');
    expect(perRequest(3, 516)).toBe('0.01');
  });
});
