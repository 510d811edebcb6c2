import type { MetricsReport } from '../agent/protocol.ts';
import {
  addHistograms,
  fisherExactGreater,
  fromValues,
  type Grouped,
  groupedHistogram,
  histogramQuantile,
  mannWhitney,
  median,
  sameBounds,
} from './statistics.ts';

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

/** One node's numbers for a judgement: its averages, and per-request detail when its agent reports it. */
export interface NodeSample {
  nodeId: string;
  cpuPercent: number;
  memoryPercent: number;
  latencyMs: number;
  errorRatePercent: number;
  requestsPerSecond: number;
  /** Requests and errors in the window the report covers (agents of protocol 1.1). */
  requests?: number;
  errors?: number;
  /** Per-request latency counts per bucket of the sample set's `latencyBoundsMs`. */
  latencyBuckets?: number[];
}

/** The samples a canary judgement rests on: recorded with the plan (baseline) and per wave (canary), for rejudge. */
export interface SampleSet {
  /** The latency buckets' upper bounds (ms; one more bucket for +Inf) shared by every node's `latencyBuckets`. */
  latencyBoundsMs?: number[];
  nodes: NodeSample[];
}

/** A metric report as the agents send it (protocol.ts), reduced to what the judge reads. */
type ReportForSamples = Pick<MetricsReport, 'nodeId' | 'cpuPercent' | 'memoryPercent' | 'latencyMs' | 'errorRatePercent' | 'requestsPerSecond' | 'window'>;

/**
 * Reports → a sample set. Latency histograms are kept when they share the bounds of the first
 * report that has one (the same module on every node); a node with other bounds contributes its
 * averages only.
 */
export function sampleSetOf(reports: readonly ReportForSamples[]): SampleSet {
  const bounds = reports.find((r) => r.window?.latencyHistogram)?.window?.latencyHistogram?.boundsMs;
  return {
    ...(bounds ? { latencyBoundsMs: [...bounds] } : {}),
    nodes: reports.map((r) => {
      const h = r.window?.latencyHistogram;
      return {
        nodeId: r.nodeId,
        cpuPercent: r.cpuPercent,
        memoryPercent: r.memoryPercent,
        latencyMs: r.latencyMs,
        errorRatePercent: r.errorRatePercent,
        requestsPerSecond: r.requestsPerSecond,
        ...(r.window ? { requests: r.window.requests, errors: r.window.errors } : {}),
        ...(h && bounds && sameBounds(h.boundsMs, bounds) && h.counts.length === bounds.length + 1 ? { latencyBuckets: [...h.counts] } : {}),
      };
    }),
  };
}

export interface JudgeSettings {
  thresholds: CanaryThresholds;
  minimum: MinimumDeltas;
  /**
   * Confidence of a wave's statistical verdict (e.g. 0.99): the chance that a wave whose canary
   * differs from its baseline by noise alone passes. Split over the four metrics (Bonferroni), and
   * for the outlier search over the four metrics of every canary node.
   */
  confidence: number;
}

/** Below this many samples on either side the rank test is not run (its normal approximation would be meaningless). */
export const MIN_SAMPLES = 3;

export interface MetricJudgement {
  metric: MetricName;
  /** What one sample is: a request (from histograms or request counts) or a node's report. */
  unit: 'request' | 'node';
  samples: { baseline: number; canary: number };
  medians: { baseline: number; canary: number };
  means: { baseline: number; canary: number };
  /** Rank-biserial correlation (−1…1, positive: the canary is worse); null when the test did not run. */
  effectSize: number | null;
  /** Which test gave the p-value: the rank test, or for per-request error counts the exact test. */
  test: 'mann-whitney' | 'fisher-exact' | null;
  /** One-sided p-value; null when there were too few samples. */
  pValue: number | null;
  /** The p-value below which this metric is a significant regression. */
  alpha: number;
  /** The existing threshold check on the averages. */
  changePercent: number | null;
  limitPercent: number;
  minimumDelta: number;
  thresholdFailed: boolean;
  /** Significant, and worse by more than the minimum delta. */
  statisticalFailed: boolean;
  verdict: 'pass' | 'fail';
  reason: string;
}

export interface OutlierNode {
  nodeId: string;
  /** Per failing metric: what the node showed against the baseline. */
  reasons: string[];
}

export interface WaveJudgement {
  ok: boolean;
  metrics: MetricJudgement[];
  outliers: OutlierNode[];
  summary: string;
}

const METRICS: MetricName[] = ['errorRatePercent', 'latencyMs', 'cpuPercent', 'memoryPercent'];
const fmt = (n: number) => String(round(n));
const fmtP = (p: number) => (p < 1e-100 ? '<1e-100' : p < 0.0001 ? p.toExponential(2) : String(Math.round(p * 10000) / 10000));
const mean = (xs: readonly number[]) => (xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : 0);

interface MetricData {
  unit: 'request' | 'node';
  /** Per-request error counts, for the exact test. */
  counts?: { requests: number; errors: number };
  grouped: Grouped;
  n: number;
  median: number;
  mean: number;
}

/** A metric's samples for the rank test: per request where every node reports the detail, else per node. */
function metricData(set: SampleSet, nodes: readonly NodeSample[], metric: MetricName, perRequest: boolean): MetricData {
  const values = nodes.map((n) => n[metric]);
  const nodeLevel = (): MetricData => ({ unit: 'node', grouped: fromValues(values), n: values.length, median: median(values), mean: mean(values) });
  if (!perRequest) return nodeLevel();
  if (metric === 'latencyMs' && set.latencyBoundsMs) {
    const h = addHistograms(
      set.latencyBoundsMs,
      nodes.map((n) => ({ boundsMs: set.latencyBoundsMs!, counts: n.latencyBuckets! })),
    );
    const requests = h.counts.reduce((s, c) => s + c, 0);
    const weighted = nodes.reduce((s, n) => s + n.latencyMs * (n.latencyBuckets ?? []).reduce((a, c) => a + c, 0), 0);
    return { unit: 'request', grouped: groupedHistogram(h), n: requests, median: round(histogramQuantile(h, 0.5)), mean: requests ? weighted / requests : 0 };
  }
  if (metric === 'errorRatePercent') {
    const requests = nodes.reduce((s, n) => s + (n.requests ?? 0), 0);
    const errors = nodes.reduce((s, n) => s + (n.errors ?? 0), 0);
    const rate = requests ? (errors / requests) * 100 : 0;
    // Each request is 0 (answered) or 100 (an error): the mean of the outcomes is the error rate in %.
    return {
      unit: 'request',
      grouped: [
        [0, requests - errors],
        [100, errors],
      ],
      n: requests,
      median: median(values),
      mean: rate,
      counts: { requests, errors },
    };
  }
  return nodeLevel();
}

const hasRequestDetail = (set: SampleSet, nodes: readonly NodeSample[], metric: MetricName) =>
  nodes.length > 0 &&
  (metric === 'latencyMs'
    ? !!set.latencyBoundsMs && nodes.every((n) => n.latencyBuckets)
    : metric === 'errorRatePercent' && nodes.every((n) => n.requests !== undefined && n.errors !== undefined));

function judgeMetric(
  metric: MetricName,
  baselineSet: SampleSet,
  baselineNodes: readonly NodeSample[],
  canarySet: SampleSet,
  canaryNodes: readonly NodeSample[],
  settings: JudgeSettings,
  alpha: number,
): MetricJudgement {
  const perRequest =
    hasRequestDetail(baselineSet, baselineNodes, metric) &&
    hasRequestDetail(canarySet, canaryNodes, metric) &&
    (metric !== 'latencyMs' || sameBounds(baselineSet.latencyBoundsMs!, canarySet.latencyBoundsMs!));
  const b = metricData(baselineSet, baselineNodes, metric, perRequest);
  const c = metricData(canarySet, canaryNodes, metric, perRequest);
  const limitPercent = settings.thresholds[LIMIT_KEY[metric]];
  const minimumDelta = settings.minimum[metric];
  const delta = c.mean - b.mean;
  const changePercent = b.mean > 0 ? round((delta / b.mean) * 100) : c.mean > 0 ? null : 0;
  const thresholdFailed = (changePercent === null || changePercent > limitPercent) && delta > minimumDelta;
  const tested = b.n >= MIN_SAMPLES && c.n >= MIN_SAMPLES;
  const rank = tested ? mannWhitney(b.grouped, c.grouped) : undefined;
  const exact = tested && b.counts && c.counts;
  const test = rank && {
    name: exact ? ('fisher-exact' as const) : ('mann-whitney' as const),
    effectSize: rank.effectSize,
    pValue: exact ? fisherExactGreater(b.counts!.errors, b.counts!.requests, c.counts!.errors, c.counts!.requests) : rank.pValue,
  };
  const statisticalFailed = !!test && test.pValue < alpha && delta > minimumDelta;
  // Averages of thousands of requests still move by chance (10 expected errors in 2,000 requests
  // come as 20 one wave in 300): where the rank test ran, a breach of the limit counts only when
  // the test confirms it. Without a test (too few samples) the limit alone decides, as before.
  const thresholdCounts = thresholdFailed && (!test || test.pValue < alpha);
  const unit = UNIT[metric];
  const change = `${LABEL[metric]} ${fmt(b.mean)}${unit} → ${fmt(c.mean)}${unit}`;
  const relative = `${changePercent === null ? 'from 0' : `${changePercent >= 0 ? '+' : ''}${changePercent}%`}, limit +${limitPercent}%`;
  const reasons: string[] = [];
  if (thresholdCounts) reasons.push(`${change} (${relative})`);
  if (statisticalFailed)
    reasons.push(
      `${LABEL[metric]} worse by ${test!.name === 'fisher-exact' ? "Fisher's exact test" : 'Mann-Whitney U'}: p=${fmtP(test!.pValue)} < ${fmtP(alpha)}, effect size ${round(test!.effectSize)}, ${change} over ${c.n} canary and ${b.n} baseline ${c.unit}s`,
    );
  return {
    metric,
    unit: c.unit,
    samples: { baseline: b.n, canary: c.n },
    medians: { baseline: round(b.median), canary: round(c.median) },
    means: { baseline: round(b.mean), canary: round(c.mean) },
    test: test ? test.name : null,
    effectSize: test ? Math.round(test.effectSize * 1000) / 1000 : null,
    pValue: test ? test.pValue : null,
    alpha,
    changePercent,
    limitPercent,
    minimumDelta,
    thresholdFailed,
    statisticalFailed,
    verdict: thresholdCounts || statisticalFailed ? 'fail' : 'pass',
    reason: reasons.length
      ? reasons.join('; ')
      : `${change}${test ? `, p=${fmtP(test.pValue)}` : `, too few samples for the rank test (${c.n} canary, ${b.n} baseline)`}${
          thresholdFailed ? ` (${relative}, but within noise: p ≥ ${fmtP(alpha)})` : ''
        }`,
  };
}

/**
 * A canary wave's judgement (docs/adr/0022-statistical-canary-judge.md). Per metric, canary
 * against baseline: the existing threshold check on the averages (relative limit and minimum
 * absolute delta) and a one-sided Mann-Whitney U test at the configured confidence (significant
 * and worse by more than the minimum delta). Then each canary node on its own against the
 * baseline, the same two checks at a confidence split over all nodes, so one bad node among many
 * cannot hide in the average: it fails the wave and is named. A node's threshold breach counts only
 * where its own rank test (per request) confirms it, so one node's sampling noise does not.
 */
export function judgeWave(baseline: SampleSet, canary: SampleSet, settings: JudgeSettings): WaveJudgement {
  const risk = 1 - settings.confidence;
  const metrics = METRICS.map((m) => judgeMetric(m, baseline, baseline.nodes, canary, canary.nodes, settings, risk / METRICS.length));
  const outliers: OutlierNode[] = [];
  // Node by node only where there are several canary nodes: with one, the wave check above is it.
  if (canary.nodes.length > 1) {
    const alpha = risk / (METRICS.length * canary.nodes.length);
    for (const node of canary.nodes) {
      // One node's averages are noisy (5 errors in 1,000 requests one window, 11 the next): as for
      // the wave, a threshold breach makes it an outlier only where its own samples confirm it.
      const reasons = METRICS.map((m) => judgeMetric(m, baseline, baseline.nodes, canary, [node], settings, alpha))
        .filter((j) => j.verdict === 'fail')
        .map((j) => j.reason);
      if (reasons.length) outliers.push({ nodeId: node.nodeId, reasons });
    }
  }
  const failed = metrics.filter((m) => m.verdict === 'fail');
  const parts = [...failed.map((m) => m.reason), ...outliers.map((o) => `outlier node ${o.nodeId}: ${o.reasons.join('; ')}`)];
  return {
    ok: parts.length === 0,
    metrics,
    outliers,
    summary: parts.length ? parts.join('; ') : `within limits: ${metrics.map((m) => m.reason).join('; ')}`,
  };
}

/** A canary's pre-deployment baseline: the averages, and the samples the statistical judge and rejudge read. */
export type CanaryBaseline = MetricAverages & { sampleSet?: SampleSet };

/** The baseline as shown in stage details and audit: the averages, without the per-node samples. */
export const baselineAverages = (b: CanaryBaseline): MetricAverages => {
  const { sampleSet: _samples, ...averages } = b;
  return averages;
};

/** The averages shown beside a judgement (and kept in the plan as before). */
export const averagesOf = (set: SampleSet): MetricAverages => averageMetrics(set.nodes);

/** A baseline recorded before samples were kept (an older plan): its averages as one pseudo-node, judged by thresholds. */
export const baselineSampleSet = (b: CanaryBaseline): SampleSet => b.sampleSet ?? { nodes: [{ nodeId: 'baseline', ...baselineAverages(b) }] };

/**
 * A p-value with 4 significant digits, and 0 below 1e-100: DynamoDB numbers stop at 1e-130, and a
 * p-value that small says only "certain".
 */
export const storablePValue = (p: number | null) => (p === null ? null : p < 1e-100 ? 0 : Number(p.toPrecision(4)));

/** A wave's judgement as the stage details show it (and as rejudge answers). */
export function presentJudgement(j: WaveJudgement) {
  return {
    passed: j.ok,
    summary: j.summary,
    metrics: j.metrics.map((m) => ({
      metric: m.metric,
      unit: m.unit,
      samples: m.samples,
      medians: m.medians,
      means: m.means,
      effectSize: m.effectSize,
      test: m.test,
      pValue: storablePValue(m.pValue),
      alpha: m.alpha,
      changePercent: m.changePercent,
      limitPercent: m.limitPercent,
      verdict: m.verdict,
      reason: m.reason,
    })),
    outliers: j.outliers,
    /** The threshold checks on averages, as before the statistical judge (kept for existing readers). */
    checks: j.metrics.map((m) => ({
      metric: m.metric,
      baseline: m.means.baseline,
      canary: m.means.canary,
      changePercent: m.changePercent,
      limitPercent: m.limitPercent,
      failed: m.thresholdFailed,
    })),
  };
}
