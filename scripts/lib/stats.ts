/** Small statistics the benchmark scripts share (npm run bench, npm run load). */

/** The nearest-rank p-th percentile of values already sorted ascending; undefined for none. */
export function percentileOfSorted(sorted: readonly number[], p: number): number | undefined {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] : undefined;
}

/** The nearest-rank p-th percentile of `values`; NaN for none. */
export function percentile(values: readonly number[], p: number): number {
  return (
    percentileOfSorted(
      [...values].sort((a, b) => a - b),
      p,
    ) ?? Number.NaN
  );
}

/**
 * Adaptive stabilisation (ADR 0023) shrunk from minutes to seconds, as the integration suites run
 * it: a configured wait, so a benchmark measures the work a deployment does, not the time it is
 * told to wait.
 */
export const SHORT_STABILISATION = { STABILISE_MIN_SECONDS: '1', STABILISE_POLL_SECONDS: '1', STABILISE_MAX_SECONDS: '10' } as const;

/** Calls per request with two decimals; calls made for fewer than 1 request in 200 (a cache refill, a background look-up) show as "<0.01", not as a misleading "0.00". */
export function perRequest(calls: number, requests: number): string {
  const x = calls / requests;
  return x > 0 && x < 0.005 ? '<0.01' : x.toFixed(2);
}
