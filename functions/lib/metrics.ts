/**
 * Business metrics for Prometheus (docs/adr/0027-prometheus-metrics.md).
 *
 * The product runs as many short-lived Lambdas, so an in-process counter would count one instance's
 * share and vanish with it. Counters and histogram buckets therefore live in DynamoDB: a few shard
 * items in the Settings table (`metrics#0` … `metrics#7`), one top-level number attribute per
 * sample, incremented with `ADD` inside the same transaction as the state change they count (so a
 * retried or raced change that writes nothing counts nothing). `/metrics` reads the shards with one
 * BatchGetItem and sums them; prom-client formats the exposition from a fresh Registry per scrape.
 */
import { randomInt } from 'node:crypto';
import { BatchGetCommand } from '@aws-sdk/lib-dynamodb';
import { Registry } from 'prom-client';
import { dynamo } from './aws.ts';
import { tableName } from './tables.ts';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import { cloudwatchMetrics, MetricUnit } from './emf.ts';

export type Labels = Record<string, string>;

interface MetricSpec {
  type: 'counter' | 'histogram' | 'gauge';
  help: string;
  labelNames: readonly string[];
  /** Histogram upper bounds (seconds), without +Inf. */
  buckets?: readonly number[];
  /** The same measurement in CloudWatch (EMF, namespace KmodOrchestrator; labels become dimensions). */
  cloudwatch?: { name: string; unit: 'Count' | 'Seconds' };
}

/** Durations from seconds to hours: stages bake for minutes, approvals wait for hours. */
const DURATION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400] as const;

/** Every series `/metrics` exposes: the stored business metrics and the gauges derived at scrape time. */
export const METRICS = {
  kmod_deployments_started_total: {
    type: 'counter',
    help: 'Deployments accepted and started, by target environment.',
    labelNames: ['environment'],
    cloudwatch: { name: 'DeploymentsStarted', unit: 'Count' },
  },
  kmod_deployments_succeeded_total: {
    type: 'counter',
    help: 'Deployments that succeeded.',
    labelNames: ['environment', 'strategy'],
    cloudwatch: { name: 'DeploymentsSucceeded', unit: 'Count' },
  },
  kmod_deployments_failed_total: {
    type: 'counter',
    help: 'Deployments that failed.',
    labelNames: ['environment', 'strategy'],
    cloudwatch: { name: 'DeploymentsFailed', unit: 'Count' },
  },
  kmod_deployments_rolled_back_total: {
    type: 'counter',
    help: 'Deployments that ended rolled back.',
    labelNames: ['environment', 'strategy'],
    cloudwatch: { name: 'DeploymentsRolledBack', unit: 'Count' },
  },
  kmod_deployments_cancelled_total: {
    type: 'counter',
    help: 'Deployments cancelled.',
    labelNames: ['environment', 'strategy'],
    cloudwatch: { name: 'DeploymentsCancelled', unit: 'Count' },
  },
  kmod_canary_verdicts_total: {
    type: 'counter',
    help: 'Canary waves judged, by environment and verdict (passed, failed).',
    labelNames: ['environment', 'verdict'],
    cloudwatch: { name: 'CanaryVerdicts', unit: 'Count' },
  },
  kmod_stage_duration_seconds: {
    type: 'histogram',
    help: 'Time from a stage starting to it finishing, by stage and result.',
    labelNames: ['stage', 'status'],
    buckets: DURATION_BUCKETS,
    cloudwatch: { name: 'StageDuration', unit: 'Seconds' },
  },
  kmod_approval_wait_seconds: {
    type: 'histogram',
    help: 'Time an approval gate waited from being opened to its final outcome (Approved, Rejected, Expired), by environment.',
    labelNames: ['environment', 'outcome'],
    buckets: DURATION_BUCKETS,
    cloudwatch: { name: 'ApprovalWait', unit: 'Seconds' },
  },
  // Gauges derived from the tables at scrape time (kept from before ADR 0027; names unchanged).
  kmod_deployments: { type: 'gauge', help: 'Deployments created in the last 24 h, by current status.', labelNames: ['status'] },
  kmod_nodes: { type: 'gauge', help: 'Registered nodes per environment.', labelNames: ['environment'] },
  kmod_nodes_by_health: {
    type: 'gauge',
    help: 'Registered nodes per environment by their last reported health status (Unknown before the first report).',
    labelNames: ['environment', 'status'],
  },
  kmod_module_version_nodes: {
    type: 'gauge',
    help: 'Nodes running each module version, per environment.',
    labelNames: ['environment', 'module', 'version'],
  },
  kmod_approvals_pending: { type: 'gauge', help: 'Approval gates waiting for a decision.', labelNames: [] },
  kmod_degraded_modules: {
    type: 'gauge',
    help: 'Modules left Degraded per environment (a rollback could not finish; new deployments refused until repaired).',
    labelNames: ['environment'],
  },
  kmod_environment_degraded: {
    type: 'gauge',
    help: '1 for each module and environment left Degraded, labelled with the deployment to roll back.',
    labelNames: ['environment', 'module', 'deployment'],
  },
} as const satisfies Record<string, MetricSpec>;

export type MetricName = keyof typeof METRICS;
type StoredName = { [K in MetricName]: (typeof METRICS)[K]['type'] extends 'gauge' ? never : K }[MetricName];

/** Every sample name `/metrics` can print (histograms as `_bucket`, `_sum`, `_count`). */
export function exposedSampleNames(): string[] {
  return Object.entries(METRICS).flatMap(([name, spec]) => (spec.type === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name]));
}

export const METRIC_SHARDS = 8;
const shardKey = (i: number) => `metrics#${i}`;

/** The attribute name of one stored sample: its sample name and sorted labels. */
function sampleAttribute(sample: string, labels: Labels): string {
  return JSON.stringify([sample, Object.fromEntries(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)))]);
}

/**
 * Increments of stored samples (attribute → amount), and the observations they came from, which
 * go to CloudWatch as EMF once the transaction that stores them has committed (publishCommitted).
 */
export class Increments extends Map<string, number> {
  readonly observed: { name: StoredName; labels: Labels; value: number }[] = [];
}

export function counterIncrement(name: StoredName, labels: Labels, by = 1, into: Increments = new Increments()): Increments {
  const a = sampleAttribute(name, labels);
  into.set(a, (into.get(a) ?? 0) + by);
  into.observed.push({ name, labels, value: by });
  return into;
}

/** A histogram observation: +1 to every bucket whose bound holds the value (stored cumulative), 0 to the others, +Inf, sum and count. */
export function histogramIncrement(name: StoredName, labels: Labels, seconds: number, into: Increments = new Increments()): Increments {
  const spec: MetricSpec = METRICS[name];
  into.observed.push({ name, labels, value: seconds });
  // Every bucket is written (ADD 0 creates it), so a series has all its buckets from its first observation.
  for (const bound of [...(spec.buckets ?? []), Number.POSITIVE_INFINITY]) {
    const a = sampleAttribute(`${name}_bucket`, { ...labels, le: bound === Number.POSITIVE_INFINITY ? '+Inf' : String(bound) });
    into.set(a, (into.get(a) ?? 0) + (seconds <= bound ? 1 : 0));
  }
  for (const [suffix, by] of [
    ['_sum', seconds],
    ['_count', 1],
  ] as const) {
    const a = sampleAttribute(`${name}${suffix}`, labels);
    into.set(a, (into.get(a) ?? 0) + by);
  }
  return into;
}

/** The Update of a transaction that applies increments to one (random) shard item. */
export function metricsUpdate(increments: Increments) {
  const names: Record<string, string> = {};
  const values: Record<string, number> = {};
  const adds: string[] = [];
  [...increments].forEach(([attribute, by], i) => {
    names[`#m${i}`] = attribute;
    values[`:m${i}`] = by;
    adds.push(`#m${i} :m${i}`);
  });
  return {
    TableName: tableName('metrics'),
    Key: { key: shardKey(randomInt(METRIC_SHARDS)) },
    UpdateExpression: `ADD ${adds.join(', ')}`,
    ExpressionAttributeNames: names,
    ExpressionAttributeValues: values,
  };
}

/**
 * The committed observations as CloudWatch metrics (EMF through Powertools Metrics): one EMF
 * document each, with the labels as dimensions. Call only after the transaction that stored
 * the increments succeeded, so CloudWatch and /metrics count the same events.
 */
export function publishCommitted(increments: Increments, target: Metrics = cloudwatchMetrics()): void {
  for (const o of increments.observed) {
    const spec: MetricSpec = METRICS[o.name];
    if (!spec.cloudwatch) continue;
    const single = target.singleMetric();
    single.addDimensions(o.labels);
    single.addMetric(spec.cloudwatch.name, spec.cloudwatch.unit === 'Count' ? MetricUnit.Count : MetricUnit.Seconds, o.value);
  }
}

/** The stored samples, summed over every shard: one BatchGetItem (plus retries of unprocessed keys). */
export async function readStoredSamples(): Promise<Map<string, number>> {
  const table = tableName('metrics');
  let keys: Record<string, unknown>[] = Array.from({ length: METRIC_SHARDS }, (_, i) => ({ key: shardKey(i) }));
  const totals = new Map<string, number>();
  for (let attempt = 0; keys.length && attempt < 5; attempt++) {
    const out = await dynamo().send(new BatchGetCommand({ RequestItems: { [table]: { Keys: keys } } }));
    for (const item of out.Responses?.[table] ?? []) {
      for (const [a, v] of Object.entries(item)) {
        if (a === 'key' || typeof v !== 'number') continue;
        totals.set(a, (totals.get(a) ?? 0) + v);
      }
    }
    keys = (out.UnprocessedKeys?.[table]?.Keys ?? []) as Record<string, unknown>[];
  }
  return totals;
}

export interface GaugeSample {
  name: MetricName;
  labels: Labels;
  value: number;
}

/**
 * The exposition: a fresh prom-client Registry filled from stored sums and scrape-time gauges.
 * Every declared metric is registered (so HELP/TYPE appear even before the first event).
 */
export async function exposition(stored: Map<string, number>, gauges: GaugeSample[]): Promise<{ contentType: string; body: string }> {
  const registry = new Registry();
  const byMetric = new Map<string, { value: number; labels: Labels; metricName: string }[]>();
  const add = (metric: string, metricName: string, labels: Labels, value: number) => {
    const list = byMetric.get(metric) ?? [];
    list.push({ value, labels, metricName });
    byMetric.set(metric, list);
  };
  for (const [attribute, value] of stored) {
    const [sample, labels] = JSON.parse(attribute) as [string, Labels];
    const metric = (Object.keys(METRICS) as MetricName[]).find((m) => sample === m || (METRICS[m].type === 'histogram' && sample.startsWith(`${m}_`)));
    // `le` goes last, as Prometheus clients print it.
    const { le, ...rest } = labels;
    if (metric) add(metric, sample, le === undefined ? rest : { ...rest, le }, value);
  }
  for (const g of gauges) add(g.name, g.name, g.labels, g.value);
  for (const [name, spec] of Object.entries(METRICS) as [MetricName, MetricSpec][]) {
    const values = (byMetric.get(name) ?? []).sort((a, b) => bucketOrder(a, b));
    registry.registerMetric({
      name,
      help: spec.help,
      type: spec.type,
      aggregator: 'sum',
      get: async () => ({ name, help: spec.help, type: spec.type, aggregator: 'sum', values }),
      reset: () => {},
      // biome-ignore lint/suspicious/noExplicitAny: prom-client's Metric type is a class; the registry only calls get().
    } as any);
  }
  return { contentType: registry.contentType, body: await registry.metrics() };
}

/** Histogram samples grouped by series, buckets in ascending `le`, then sum and count. */
function bucketOrder(a: { metricName: string; labels: Labels }, b: { metricName: string; labels: Labels }): number {
  const series = (x: { labels: Labels }) =>
    JSON.stringify(
      Object.entries(x.labels)
        .filter(([k]) => k !== 'le')
        .sort(([p], [q]) => p.localeCompare(q)),
    );
  const s = series(a).localeCompare(series(b));
  if (s !== 0) return s;
  const kind = (x: { metricName: string }) => (x.metricName.endsWith('_count') ? 2 : x.metricName.endsWith('_sum') ? 1 : 0);
  if (kind(a) !== kind(b)) return kind(a) - kind(b);
  const le = (x: { labels: Labels }) => (x.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(x.labels.le ?? 0));
  return le(a) - le(b);
}
