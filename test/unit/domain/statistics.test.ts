import { describe, expect, it } from 'vitest';
import { fisherExactGreater, fromValues, groupedHistogram, histogramOf, histogramQuantile, mannWhitney, median } from '../../../functions/domain/statistics.ts';
import { normal, seededRandom } from '../../../functions/agent/simulation.ts';

/** U of the canary by counting every pair (ties one half): the definition the grouped ranks must match. */
function bruteU(baseline: number[], canary: number[]): number {
  let u = 0;
  for (const c of canary) for (const b of baseline) u += c > b ? 1 : c === b ? 0.5 : 0;
  return u;
}

describe('mannWhitney', () => {
  it('matches the textbook value without ties (scipy.stats.mannwhitneyu, asymptotic, continuity: p = 0.006093)', () => {
    const r = mannWhitney(fromValues([1, 2, 3, 4, 5]), fromValues([6, 7, 8, 9, 10]));
    expect(r.u).toBe(25);
    expect(r.effectSize).toBe(1);
    expect(r.z).toBeCloseTo(12 / Math.sqrt((25 * 11) / 12), 10);
    expect(r.pValue).toBeCloseTo(0.006093, 5);
    // The other direction: the canary is better, nothing to report.
    expect(mannWhitney(fromValues([6, 7, 8, 9, 10]), fromValues([1, 2, 3, 4, 5])).pValue).toBeGreaterThan(0.99);
  });

  it('counts U like the pairwise definition, ties included, for grouped and raw input alike', () => {
    const random = seededRandom(7);
    for (let run = 0; run < 20; run++) {
      const b = Array.from({ length: 30 }, () => Math.floor(random() * 6));
      const c = Array.from({ length: 17 }, () => Math.floor(random() * 6));
      expect(mannWhitney(fromValues(b), fromValues(c)).u).toBe(bruteU(b, c));
    }
  });

  it('applies the tie correction: 0/1 outcomes give the pooled two-proportion z (continuity aside)', () => {
    // 1000 vs 1000 requests, 10 vs 30 errors.
    const r = mannWhitney(
      [
        [0, 990],
        [1, 10],
      ],
      [
        [0, 970],
        [1, 30],
      ],
    );
    const p = 40 / 2000;
    const zProportions = (0.03 - 0.01) / Math.sqrt(p * (1 - p) * (2 / 1000));
    expect(r.z).toBeCloseTo(zProportions, 1);
    expect(r.pValue).toBeLessThan(0.001);
  });

  it('says nothing (p = 1) when every value is tied or a side is empty', () => {
    expect(mannWhitney(fromValues([3, 3, 3]), fromValues([3, 3])).pValue).toBe(1);
    expect(mannWhitney(fromValues([]), fromValues([1, 2])).pValue).toBe(1);
  });

  it('is calibrated on bucketed data: under the null hypothesis p < α about α of the time', () => {
    const random = seededRandom(2026);
    const draw = () => Array.from({ length: 400 }, () => 20 + normal(random) * 5);
    let below = 0;
    const runs = 2000;
    for (let i = 0; i < runs; i++) {
      if (mannWhitney(groupedHistogram(histogramOf(draw())), groupedHistogram(histogramOf(draw()))).pValue < 0.05) below++;
    }
    // Binomial(2000, 0.05): mean 100, sd 9.7; the continuity correction makes it slightly conservative.
    expect(below / runs).toBeGreaterThan(0.03);
    expect(below / runs).toBeLessThan(0.065);
  });
});

describe('histograms', () => {
  it('buckets by upper bound and interpolates quantiles within a bucket', () => {
    const h = histogramOf([1, 4, 6, 12, 12, 9000], [5, 10, 20]);
    expect(h.counts).toEqual([2, 1, 2, 1]);
    expect(histogramQuantile(h, 0.5)).toBe(10); // rank 3 of 6 ends bucket (5, 10]
    expect(histogramQuantile(h, 0.75)).toBeCloseTo(10 + 10 * (1.5 / 2), 10);
    expect(histogramQuantile(h, 1)).toBe(20); // the +Inf bucket answers with the highest finite bound
    expect(histogramQuantile(histogramOf([], [5]), 0.5)).toBe(0);
  });

  it('takes medians of odd and even samples', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    expect(median([])).toBe(0);
  });
});

describe('fisherExactGreater', () => {
  it('gives the exact hypergeometric tail where the normal approximation is far too small', () => {
    // 94 errors in 20,000 baseline requests, 12 in 1,000 canary requests.
    const p = fisherExactGreater(94, 20_000, 12, 1000);
    expect(p).toBeGreaterThan(0.004);
    expect(p).toBeLessThan(0.005);
    expect(
      mannWhitney(
        [
          [0, 20_000 - 94],
          [1, 94],
        ],
        [
          [0, 988],
          [1, 12],
        ],
      ).pValue,
    ).toBeLessThan(0.001);
    // Textbook 2×2 (Fisher's tea: 3 of 4 right): one-sided p = 17/70.
    expect(fisherExactGreater(1, 4, 3, 4)).toBeCloseTo(17 / 70, 10);
    expect(fisherExactGreater(5, 100, 0, 100)).toBe(1);
  });
});
