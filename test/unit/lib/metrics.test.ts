import { describe, expect, it } from 'vitest';
import { counterIncrement, exposedSampleNames, exposition, histogramIncrement, METRICS } from '../../../functions/lib/metrics.ts';

describe('stored metric increments', () => {
  it('adds to the same sample attribute whatever the label order', () => {
    const inc = counterIncrement('kmod_deployments_succeeded_total', { environment: 'QA', strategy: 'Rolling' });
    counterIncrement('kmod_deployments_succeeded_total', { strategy: 'Rolling', environment: 'QA' }, 2, inc);
    expect([...inc.values()]).toEqual([3]);
  });

  it('observes a histogram in every bucket that holds the value, +Inf, sum and count', () => {
    const inc = histogramIncrement('kmod_stage_duration_seconds', { stage: 'QA', status: 'Succeeded' }, 42);
    const buckets = [...inc.keys()].map((k) => JSON.parse(k) as [string, Record<string, string>]).filter(([n]) => n.endsWith('_bucket'));
    const bounds = METRICS.kmod_stage_duration_seconds.buckets.map(String);
    expect(buckets.map(([, l]) => l.le)).toEqual([...bounds, '+Inf']);
    const counted = [...inc].filter(([k]) => k.includes('_bucket')).map(([k, v]) => [(JSON.parse(k) as [string, Record<string, string>])[1].le, v]);
    expect(counted.filter(([, v]) => v === 1).map(([le]) => le)).toEqual([
      ...METRICS.kmod_stage_duration_seconds.buckets.filter((b) => b >= 42).map(String),
      '+Inf',
    ]);
    expect(counted.filter(([, v]) => v === 0).map(([le]) => le)).toEqual(METRICS.kmod_stage_duration_seconds.buckets.filter((b) => b < 42).map(String));
    expect(inc.get(JSON.stringify(['kmod_stage_duration_seconds_sum', { stage: 'QA', status: 'Succeeded' }]))).toBe(42);
    expect(inc.get(JSON.stringify(['kmod_stage_duration_seconds_count', { stage: 'QA', status: 'Succeeded' }]))).toBe(1);
  });
});

describe('exposition', () => {
  it('prints stored sums and gauges in Prometheus text format, buckets ascending with le last', async () => {
    const stored = new Map<string, number>();
    for (const [k, v] of histogramIncrement('kmod_stage_duration_seconds', { stage: 'QA', status: 'Succeeded' }, 3)) stored.set(k, v);
    for (const [k, v] of counterIncrement('kmod_deployments_started_total', { environment: 'QA' }, 5)) stored.set(k, v);
    const { body, contentType } = await exposition(stored, [{ name: 'kmod_approvals_pending', labels: {}, value: 2 }]);
    expect(contentType).toContain('text/plain');
    expect(body).toContain('# TYPE kmod_deployments_started_total counter\nkmod_deployments_started_total{environment="QA"} 5');
    expect(body).toContain('kmod_approvals_pending 2');
    const buckets = body.split('\n').filter((l) => l.startsWith('kmod_stage_duration_seconds_bucket'));
    expect(buckets[0]).toBe('kmod_stage_duration_seconds_bucket{stage="QA",status="Succeeded",le="1"} 0');
    expect(buckets[1]).toBe('kmod_stage_duration_seconds_bucket{stage="QA",status="Succeeded",le="5"} 1');
    expect(buckets.at(-1)).toBe('kmod_stage_duration_seconds_bucket{stage="QA",status="Succeeded",le="+Inf"} 1');
    expect(body).toContain('kmod_stage_duration_seconds_sum{stage="QA",status="Succeeded"} 3');
    // Every declared metric has HELP and TYPE even before its first sample.
    for (const name of Object.keys(METRICS)) expect(body).toContain(`# TYPE ${name} `);
  });

  it('names histogram samples with their suffixes', () => {
    expect(exposedSampleNames()).toEqual(expect.arrayContaining(['kmod_stage_duration_seconds_bucket', 'kmod_deployments_started_total', 'kmod_nodes']));
    expect(exposedSampleNames()).not.toContain('kmod_stage_duration_seconds');
  });
});

describe('CloudWatch EMF of committed increments', () => {
  it('publishes each observation once, labels as dimensions, in the same units as /metrics', async () => {
    const { Metrics } = await import('@aws-lambda-powertools/metrics');
    const { publishCommitted } = await import('../../../functions/lib/metrics.ts');
    const target = new Metrics({ namespace: 'KmodOrchestrator', serviceName: 'kmod-orchestrator' });
    const lines: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string) => {
      lines.push(String(chunk));
      return true;
    }) as typeof process.stdout.write;
    try {
      const inc = counterIncrement('kmod_deployments_rolled_back_total', { environment: 'Production', strategy: 'Canary' });
      histogramIncrement('kmod_stage_duration_seconds', { stage: 'QA', status: 'Succeeded' }, 42, inc);
      publishCommitted(inc, target);
    } finally {
      process.stdout.write = write;
    }
    const docs = lines
      .flatMap((l) => l.split('\n'))
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    expect(docs).toHaveLength(2);
    const [counted, timed] = docs;
    expect(counted._aws.CloudWatchMetrics[0]).toMatchObject({
      Namespace: 'KmodOrchestrator',
      Dimensions: [expect.arrayContaining(['service', 'environment', 'strategy'])],
      Metrics: [{ Name: 'DeploymentsRolledBack', Unit: 'Count' }],
    });
    expect(counted).toMatchObject({ environment: 'Production', strategy: 'Canary', DeploymentsRolledBack: 1 });
    expect(timed._aws.CloudWatchMetrics[0].Metrics).toEqual([{ Name: 'StageDuration', Unit: 'Seconds' }]);
    expect(timed).toMatchObject({ stage: 'QA', status: 'Succeeded', StageDuration: 42 });
  });

  it('names a CloudWatch metric for every stored counter and histogram', () => {
    for (const [name, spec] of Object.entries(METRICS)) {
      if (spec.type === 'gauge') continue;
      expect('cloudwatch' in spec && spec.cloudwatch, name).toBeTruthy();
    }
  });
});
