/**
 * Rank statistics for the canary judge (docs/adr/0022-statistical-canary-judge.md): the
 * Mann-Whitney U test on grouped data (distinct values with counts, such as histogram buckets or
 * request/error counts), with the normal approximation, tie correction and continuity correction.
 * Grouped input keeps a judgement over 100,000 requests at the cost of its ~20 histogram buckets.
 */
import binomialCdf from '@stdlib/stats-base-dists-binomial-cdf';
import hypergeometricCdf from '@stdlib/stats-base-dists-hypergeometric-cdf';
import normalCdf from '@stdlib/stats-base-dists-normal-cdf';

/** A sample as distinct values with how often each occurs (order does not matter). */
export type Grouped = readonly (readonly [value: number, count: number])[];

export interface MannWhitneyResult {
  /** Sample sizes (sums of the counts). */
  nBaseline: number;
  nCanary: number;
  /** U of the canary: pairs where the canary value is larger, ties counting one half. */
  u: number;
  /** Standardised U (tie- and continuity-corrected); positive when the canary tends to be larger. */
  z: number;
  /** One-sided p-value for "the canary tends to be larger than the baseline"; 1 when nothing can be said. */
  pValue: number;
  /**
   * Rank-biserial correlation 2U/(n₁n₂) − 1, in [−1, 1]: the probability that a canary value
   * exceeds a baseline value minus the probability of the reverse. 0 means no shift.
   */
  effectSize: number;
}

export const fromValues = (values: readonly number[]): Grouped => {
  const m = new Map<number, number>();
  for (const v of values) m.set(v, (m.get(v) ?? 0) + 1);
  return [...m];
};

const total = (g: Grouped) => g.reduce((s, [, c]) => s + c, 0);

/**
 * One-sided Mann-Whitney U test of H₁ "canary values tend to be larger (worse) than baseline
 * values". Variance with the tie correction n₁n₂/12·((N+1) − Σ(t³−t)/(N(N−1))), so coarse
 * histogram buckets and 0/1 error outcomes (all ties within a bucket) stay calibrated.
 */
export function mannWhitney(baseline: Grouped, canary: Grouped): MannWhitneyResult {
  const nB = total(baseline);
  const nC = total(canary);
  if (nB === 0 || nC === 0) return { nBaseline: nB, nCanary: nC, u: 0, z: 0, pValue: 1, effectSize: 0 };
  const counts = new Map<number, [number, number]>();
  for (const [v, c] of baseline) if (c > 0) (counts.get(v) ?? counts.set(v, [0, 0]).get(v)!)[0] += c;
  for (const [v, c] of canary) if (c > 0) (counts.get(v) ?? counts.set(v, [0, 0]).get(v)!)[1] += c;
  const n = nB + nC;
  let below = 0;
  let rankSumCanary = 0;
  let tieTerm = 0;
  for (const v of [...counts.keys()].sort((a, b) => a - b)) {
    const [b, c] = counts.get(v)!;
    const t = b + c;
    rankSumCanary += c * (below + (t + 1) / 2);
    tieTerm += t * t * t - t;
    below += t;
  }
  const u = rankSumCanary - (nC * (nC + 1)) / 2;
  const mean = (nB * nC) / 2;
  const variance = ((nB * nC) / 12) * (n + 1 - (n > 1 ? tieTerm / (n * (n - 1)) : 0));
  const effectSize = (2 * u) / (nB * nC) - 1;
  if (!(variance > 0)) return { nBaseline: nB, nCanary: nC, u, z: 0, pValue: 1, effectSize };
  const diff = u - mean;
  // Continuity correction towards the mean (never across it).
  const z = (Math.sign(diff) * Math.max(0, Math.abs(diff) - 0.5)) / Math.sqrt(variance);
  return { nBaseline: nB, nCanary: nC, u, z, pValue: normalCdf(-z, 0, 1), effectSize };
}

/**
 * One-sided Fisher exact test of H₁ "the canary's error rate is higher": P(X ≥ canaryErrors) for
 * X hypergeometric (all requests, all errors, the canary's requests). The rank test on 0/1
 * outcomes is the two-proportion z-test, whose normal tail is far too thin when errors are rare
 * (5 expected errors in 1,000 requests: 12 errors get p = 0.0002 by z, 0.0046 exactly), so error
 * counts are judged exactly.
 */
export function fisherExactGreater(baselineErrors: number, baselineRequests: number, canaryErrors: number, canaryRequests: number): number {
  if (canaryErrors <= 0 || canaryRequests <= 0 || baselineRequests <= 0) return 1;
  const p = 1 - hypergeometricCdf(canaryErrors - 1, baselineRequests + canaryRequests, baselineErrors + canaryErrors, canaryRequests);
  return Math.min(1, Math.max(0, p));
}

/**
 * One-sided exact binomial test of H₁ "the true error rate is above `rate`": P(X ≥ errors) for X
 * binomial(requests, rate). A health check judges a few seconds of traffic: 1 failure in 17
 * requests is a 5.9 % point estimate from a workload failing 0.5 % of requests, yet p = 0.58.
 */
export function binomialGreater(errors: number, requests: number, rate: number): number {
  if (errors <= 0 || requests <= 0) return 1;
  if (rate <= 0) return 0;
  if (rate >= 1) return 1;
  return Math.min(1, Math.max(0, 1 - binomialCdf(errors - 1, requests, rate)));
}

export const median = (values: readonly number[]): number => {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};

/** Default latency buckets (upper bounds, ms) of the simulated agents; the last bucket is +Inf. */
export const DEFAULT_LATENCY_BOUNDS_MS = [5, 10, 15, 20, 25, 30, 40, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000];

/** Per-request latencies as a histogram: counts per bucket (bounds are upper bounds, one more bucket for +Inf). */
export interface LatencyHistogram {
  boundsMs: number[];
  counts: number[];
}

export function histogramOf(latenciesMs: readonly number[], boundsMs: readonly number[] = DEFAULT_LATENCY_BOUNDS_MS): LatencyHistogram {
  const counts = new Array<number>(boundsMs.length + 1).fill(0);
  for (const l of latenciesMs) {
    let i = 0;
    while (i < boundsMs.length && l > boundsMs[i]) i++;
    counts[i]++;
  }
  return { boundsMs: [...boundsMs], counts };
}

export const sameBounds = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

export function addHistograms(boundsMs: number[], histograms: readonly LatencyHistogram[]): LatencyHistogram {
  const counts = new Array<number>(boundsMs.length + 1).fill(0);
  for (const h of histograms) {
    for (let i = 0; i < counts.length; i++) counts[i] += h.counts[i] ?? 0;
  }
  return { boundsMs, counts };
}

/** Buckets as a grouped sample: the bucket index stands for every value in it (ranks only need order). */
export const groupedHistogram = (h: LatencyHistogram): Grouped => h.counts.map((c, i) => [i, c] as const);

/**
 * A quantile from a histogram, interpolated linearly within its bucket (as Prometheus'
 * histogram_quantile does); the +Inf bucket answers with the highest finite bound.
 */
export function histogramQuantile(h: LatencyHistogram, q: number): number {
  const n = h.counts.reduce((s, c) => s + c, 0);
  if (n === 0) return 0;
  const rank = q * n;
  let seen = 0;
  for (let i = 0; i < h.counts.length; i++) {
    const c = h.counts[i];
    if (c > 0 && seen + c >= rank) {
      if (i >= h.boundsMs.length) return h.boundsMs.at(-1) ?? 0;
      const lower = i === 0 ? 0 : h.boundsMs[i - 1];
      return lower + ((h.boundsMs[i] - lower) * (rank - seen)) / c;
    }
    seen += c;
  }
  return h.boundsMs.at(-1) ?? 0;
}
