/**
 * Anomaly detection on nodes (docs/adr/0025-node-anomaly-detection.md): per node and metric, a
 * rolling baseline (an exponentially weighted mean and variance) fed by every metrics report the
 * node sends, in and outside deployments. A report whose metric lies more than `sigmas` deviations
 * above the baseline raises a flag; the flag clears once a report is back within `clearSigmas`
 * (hysteresis, so a value near the limit does not flap). While a metric is flagged, its reports
 * do not move its baseline: the baseline keeps describing the node's normal, so the flag does not
 * clear by the baseline learning the fault. Plain functions of (previous state, report) → (next
 * state, transitions); the caller stores the state on the node record with the report.
 */

/** Metrics watched; for all four, higher is worse, so only excursions upwards are flagged. */
export const ANOMALY_METRICS = ['latencyMs', 'errorRatePercent', 'cpuPercent', 'memoryPercent'] as const;
export type AnomalyMetric = (typeof ANOMALY_METRICS)[number];

export interface AnomalySettings {
  /** EWMA weight of a new report (0 < alpha ≤ 1); 0.1 ≈ the last 19 reports. */
  alpha: number;
  /** Deviations above the baseline mean that raise a flag. */
  sigmas: number;
  /** A flag clears when a report is back within this many deviations. */
  clearSigmas: number;
  /** Reports a baseline needs before it may flag anything. */
  minSamples: number;
  /**
   * The smallest deviation assumed per metric, in the metric's unit: a metric that never moved
   * (a host with no traffic reports latency 0 every time) is not flagged for the first tiny change.
   */
  minDeviation: Record<AnomalyMetric, number>;
}

export const DEFAULT_ANOMALY_SETTINGS: AnomalySettings = {
  alpha: 0.1,
  sigmas: 4,
  clearSigmas: 2,
  minSamples: 10,
  minDeviation: { latencyMs: 1, errorRatePercent: 0.1, cpuPercent: 1, memoryPercent: 1 },
};

/** Validation of settings (configuration is checked where it is read). */
export function checkAnomalySettings(s: AnomalySettings): string[] {
  const problems: string[] = [];
  if (!(s.alpha > 0 && s.alpha <= 1)) problems.push('ANOMALY_ALPHA must be in (0, 1]');
  if (!(s.sigmas > 0)) problems.push('ANOMALY_SIGMAS must be > 0');
  if (!(s.clearSigmas >= 0 && s.clearSigmas <= s.sigmas)) problems.push('ANOMALY_CLEAR_SIGMAS must be in [0, ANOMALY_SIGMAS]');
  if (!(Number.isInteger(s.minSamples) && s.minSamples >= 2)) problems.push('ANOMALY_MIN_SAMPLES must be an integer ≥ 2');
  return problems;
}

export interface MetricBaseline {
  mean: number;
  variance: number;
  /** Reports absorbed so far. */
  samples: number;
}

export interface AnomalyFlag {
  metric: AnomalyMetric;
  /** When the flag was raised. */
  since: string;
  /** The latest report's value, and the baseline it was judged against. */
  value: number;
  baselineMean: number;
  baselineDeviation: number;
  /** (value − mean) / deviation of the latest report. */
  score: number;
  at: string;
}

export interface NodeAnomalyState {
  baselines: Partial<Record<AnomalyMetric, MetricBaseline>>;
  flags: Partial<Record<AnomalyMetric, AnomalyFlag>>;
  /** Time of the last report observed. */
  updatedAt: string;
}

export interface AnomalyTransition {
  kind: 'raised' | 'cleared';
  metric: AnomalyMetric;
  /** raised: the new flag; cleared: the flag as it was last, with the clearing report's value and score. */
  flag: AnomalyFlag;
}

export type AnomalySample = Record<AnomalyMetric, number>;

const round = (n: number) => Math.round(n * 1000) / 1000;

/**
 * The deviation a baseline judges by: its variance with the metric's floor added in quadrature
 * (sqrt(variance + floor²)). The floor keeps a metric that never moved from being flagged for the
 * first tiny change; added rather than taken as a minimum, it also pads a young baseline whose few
 * reports happened to spread less than the metric does (CI drew one: cpu 25 ± 3, a 10-report
 * deviation of 1.0 against a true 1.7, and a healthy 27.9 scored 4.2).
 */
export function deviationOf(b: MetricBaseline, floor: number): number {
  return Math.sqrt(Math.max(0, b.variance) + floor * floor);
}

/**
 * One report into a baseline. The weight is max(alpha, 1 / (samples + 1)): the first reports are
 * averaged equally (mean and population variance of what was seen), so a young baseline is not
 * dominated by its first report, and from 1/alpha reports on the weights decay exponentially.
 */
export function absorb(b: MetricBaseline | undefined, x: number, alpha: number): MetricBaseline {
  if (!b) return { mean: x, variance: 0, samples: 1 };
  const w = Math.max(alpha, 1 / (b.samples + 1));
  const diff = x - b.mean;
  const incr = w * diff;
  return { mean: b.mean + incr, variance: (1 - w) * (b.variance + diff * incr), samples: b.samples + 1 };
}

/**
 * Observe one report: judge each metric against the baseline before it, then move the baseline
 * (unless the metric is flagged). Returns the next state and the flags raised or cleared by this
 * report (none for most reports: audits and notifications go out on transitions only).
 */
export function observe(
  prev: NodeAnomalyState | undefined,
  sample: AnomalySample,
  at: string,
  s: AnomalySettings = DEFAULT_ANOMALY_SETTINGS,
): { state: NodeAnomalyState; transitions: AnomalyTransition[] } {
  const baselines: NodeAnomalyState['baselines'] = {};
  const flags: NodeAnomalyState['flags'] = {};
  const transitions: AnomalyTransition[] = [];
  for (const metric of ANOMALY_METRICS) {
    const x = sample[metric];
    const b = prev?.baselines[metric];
    const flagged = prev?.flags[metric];
    if (typeof x !== 'number' || !Number.isFinite(x)) {
      // Nothing reported for this metric: keep what was known.
      if (b) baselines[metric] = b;
      if (flagged) flags[metric] = flagged;
      continue;
    }
    if (!b || b.samples < s.minSamples) {
      baselines[metric] = absorb(b, x, s.alpha);
      continue;
    }
    const deviation = deviationOf(b, s.minDeviation[metric]);
    const score = (x - b.mean) / deviation;
    const judged = { value: round(x), baselineMean: round(b.mean), baselineDeviation: round(deviation), score: round(score), at };
    if (flagged) {
      if (score <= s.clearSigmas) {
        transitions.push({ kind: 'cleared', metric, flag: { ...flagged, ...judged } });
        baselines[metric] = absorb(b, x, s.alpha);
      } else {
        flags[metric] = { ...flagged, ...judged };
        baselines[metric] = b;
      }
    } else if (score > s.sigmas) {
      const flag: AnomalyFlag = { metric, since: at, ...judged };
      flags[metric] = flag;
      transitions.push({ kind: 'raised', metric, flag });
      baselines[metric] = b;
    } else {
      baselines[metric] = absorb(b, x, s.alpha);
    }
  }
  return { state: { baselines, flags, updatedAt: at }, transitions };
}

/** The flags as the cluster view lists them, worst first. */
export function presentFlags(state: NodeAnomalyState | undefined): AnomalyFlag[] {
  return Object.values(state?.flags ?? {})
    .filter((f): f is AnomalyFlag => f !== undefined)
    .sort((a, b) => b.score - a.score);
}

/** A one-line description of a transition, for the audit trail and the notification. */
export function describeTransition(environment: string, nodeId: string, t: AnomalyTransition): string {
  const f = t.flag;
  return t.kind === 'raised'
    ? `${environment}/${nodeId}: ${t.metric} ${f.value} is ${f.score} deviations above its baseline ${f.baselineMean} (deviation ${f.baselineDeviation})`
    : `${environment}/${nodeId}: ${t.metric} back to ${f.value} (baseline ${f.baselineMean}, ${f.score} deviations), flagged since ${f.since}`;
}
