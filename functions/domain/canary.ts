import type { MetricsReport } from '../agent/protocol.ts';

export type MetricName = 'errorRatePercent' | 'latencyMs' | 'cpuPercent' | 'memoryPercent';

export interface MetricAverages {
  cpuPercent: number;
  memoryPercent: number;
  latencyMs: number;
  errorRatePercent: number;
  requestsPerSecond: number;
  samples: number;
}

export interface CanaryThresholds {
  /** Largest allowed rise over the baseline, in percent of the baseline. */
  errorRatePercent: number;
  latencyPercent: number;
  cpuPercent: number;
  memoryPercent: number;
}

export type MinimumDeltas = Record<MetricName, number>;

export interface MetricCheck {
  metric: MetricName;
  baseline: number;
  canary: number;
  changePercent: number;
  limitPercent: number;
  failed: boolean;
}

export interface CanaryVerdict {
  ok: boolean;
  checks: MetricCheck[];
  summary: string;
}

const round = (n: number) => Math.round(n * 100) / 100;

export function averageMetrics(
  reports: Pick<MetricsReport, 'cpuPercent' | 'memoryPercent' | 'latencyMs' | 'errorRatePercent' | 'requestsPerSecond'>[],
): MetricAverages {
  const n = reports.length || 1;
  const sum = (k: keyof MetricAverages) => reports.reduce((s, r) => s + (r[k as keyof typeof r] as number), 0);
  return {
    cpuPercent: round(sum('cpuPercent') / n),
    memoryPercent: round(sum('memoryPercent') / n),
    latencyMs: round(sum('latencyMs') / n),
    errorRatePercent: round(sum('errorRatePercent') / n),
    requestsPerSecond: round(sum('requestsPerSecond')),
    samples: reports.length,
  };
}

/**
 * Cumulative waves (e.g. 10, 30, 50, 100 %) as node counts per wave. Every wave gets at least
 * one node and the last wave reaches every node.
 */
export function planWaves(total: number, cumulativePercents: number[]): number[] {
  const percents = [...cumulativePercents];
  if (percents.some((p, i) => !(p > 0 && p <= 100) || (i > 0 && p <= percents[i - 1]))) {
    throw new Error(`canary waves must rise strictly within (0, 100], got ${percents.join(', ')}`);
  }
  if (percents.at(-1) !== 100) percents.push(100);
  const sizes: number[] = [];
  let done = 0;
  for (const p of percents) {
    const upTo = Math.min(total, Math.max(done + 1, Math.ceil((total * p) / 100)));
    if (upTo > done) sizes.push(upTo - done);
    done = upTo;
  }
  return sizes;
}

const LIMIT_KEY: Record<MetricName, keyof CanaryThresholds> = {
  errorRatePercent: 'errorRatePercent',
  latencyMs: 'latencyPercent',
  cpuPercent: 'cpuPercent',
  memoryPercent: 'memoryPercent',
};

const LABEL: Record<MetricName, string> = { errorRatePercent: 'error rate', latencyMs: 'latency', cpuPercent: 'CPU', memoryPercent: 'memory' };
const UNIT: Record<MetricName, string> = { errorRatePercent: '%', latencyMs: ' ms', cpuPercent: '%', memoryPercent: '%' };

/**
 * Threshold analysis of canary nodes against the pre-deployment baseline: a metric fails when it
 * rises by more than its limit (in percent of the baseline) and by more than its minimum absolute
 * delta, so sampling noise on near-zero baselines cannot fail a wave.
 */
export function judgeCanary(baseline: MetricAverages, canary: MetricAverages, limits: CanaryThresholds, minimum: MinimumDeltas): CanaryVerdict {
  const checks = (Object.keys(LIMIT_KEY) as MetricName[]).map((metric): MetricCheck => {
    const b = baseline[metric];
    const c = canary[metric];
    const changePercent = b > 0 ? round(((c - b) / b) * 100) : c > 0 ? Infinity : 0;
    const limitPercent = limits[LIMIT_KEY[metric]];
    return { metric, baseline: b, canary: c, changePercent, limitPercent, failed: changePercent > limitPercent && c - b > minimum[metric] };
  });
  const failed = checks.filter((c) => c.failed);
  const describe = (c: MetricCheck) =>
    `${LABEL[c.metric]} ${c.baseline}${UNIT[c.metric]} → ${c.canary}${UNIT[c.metric]} (${c.changePercent >= 0 ? '+' : ''}${c.changePercent}%, limit +${c.limitPercent}%)`;
  return {
    ok: failed.length === 0,
    checks,
    summary: failed.length ? failed.map(describe).join('; ') : `within limits: ${checks.map(describe).join('; ')}`,
  };
}
