/**
 * Synthetic traffic of the simulated fleet's agents: one metrics window of requests, each with a
 * latency and an outcome, and the node's CPU and memory. The same generator feeds the seeded
 * property tests of the canary judge, so its measured false-positive rate is the simulated fleet's.
 */
import type { MetricsReport } from './protocol.ts';
import { DEFAULT_LATENCY_BOUNDS_MS, histogramOf } from '../domain/statistics.ts';

export interface TrafficModel {
  /** Requests in one window (the simulated agent reports 10 s at ~100 req/s). */
  requests: number;
  latencyMeanMs: number;
  latencySdMs: number;
  errorRatePercent: number;
  cpuPercent: number;
  memoryPercent: number;
  /** Share of requests (0–100) that take `slowRequestMs` longer: a regression that hits a few requests hard. */
  slowRequestPercent?: number;
  slowRequestMs?: number;
}

/** The healthy simulated node: 20 ± 5 ms, 0.5 % errors, CPU 25 ± 3 %, memory 40 ± 3 %. */
export const HEALTHY_TRAFFIC: TrafficModel = { requests: 1000, latencyMeanMs: 20, latencySdMs: 5, errorRatePercent: 0.5, cpuPercent: 25, memoryPercent: 40 };

/** A small seeded generator (mulberry32) for reproducible simulations and property tests. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A standard normal draw (Box-Muller). */
export function normal(random: () => number): number {
  const u = 1 - random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

const round = (n: number) => Math.round(n * 100) / 100;
const clamp = (n: number) => Math.min(100, Math.max(0, n));

/** One window of simulated traffic as a metrics report (the agent adds nodeId and time). */
export function simulateWindow(model: TrafficModel, random: () => number = Math.random, seconds = 10): Omit<MetricsReport, 'nodeId' | 'at'> {
  const latencies: number[] = [];
  let errors = 0;
  let sum = 0;
  const slowShare = (model.slowRequestPercent ?? 0) / 100;
  for (let i = 0; i < model.requests; i++) {
    let l = Math.max(0.1, model.latencyMeanMs + normal(random) * model.latencySdMs);
    if (slowShare > 0 && random() < slowShare) l += model.slowRequestMs ?? 0;
    latencies.push(l);
    sum += l;
    if (random() * 100 < model.errorRatePercent) errors++;
  }
  const n = model.requests;
  return {
    cpuPercent: round(clamp(model.cpuPercent + (random() * 2 - 1) * 3)),
    memoryPercent: round(clamp(model.memoryPercent + (random() * 2 - 1) * 3)),
    latencyMs: round(n ? sum / n : 0),
    // The node's rate as its health report shows it: smoothed (the model's rate ± 0.2 points, as
    // before windows existed), so a node injected just below the health limit stays below it; the
    // window's counts are the raw binomial draw the canary judge tests.
    errorRatePercent: round(clamp(model.errorRatePercent + (random() * 2 - 1) * 0.2)),
    requestsPerSecond: round(n / seconds),
    window: { seconds, requests: n, errors, latencyHistogram: histogramOf(latencies, DEFAULT_LATENCY_BOUNDS_MS) },
  };
}
