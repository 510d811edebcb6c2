import { describe, expect, it } from 'vitest';
import {
  absorb,
  ANOMALY_METRICS,
  type AnomalySample,
  checkAnomalySettings,
  DEFAULT_ANOMALY_SETTINGS,
  type NodeAnomalyState,
  observe,
  presentFlags,
} from '../../../functions/domain/anomaly.ts';
import { HEALTHY_TRAFFIC, seededRandom, simulateWindow, type TrafficModel } from '../../../functions/agent/simulation.ts';

const at = (i: number) => new Date(Date.UTC(2026, 0, 1) + i * 10_000).toISOString();
const sampleOf = (r: ReturnType<typeof simulateWindow>): AnomalySample => ({
  latencyMs: r.latencyMs,
  errorRatePercent: r.errorRatePercent,
  cpuPercent: r.cpuPercent,
  memoryPercent: r.memoryPercent,
});

/** Feed `n` windows of a traffic model into a state; returns the state and every transition. */
function run(state: NodeAnomalyState | undefined, model: TrafficModel, random: () => number, n: number, from = 0, requests = 200) {
  const transitions: ReturnType<typeof observe>['transitions'] = [];
  let s = state;
  for (let i = 0; i < n; i++) {
    const r = observe(s, sampleOf(simulateWindow({ ...model, requests }, random)), at(from + i));
    s = r.state;
    transitions.push(...r.transitions);
  }
  return { state: s!, transitions };
}

describe('absorb', () => {
  it('averages the first reports equally (mean and population variance), then weighs by alpha', () => {
    let b = absorb(undefined, 10, 0.1);
    b = absorb(b, 20, 0.1);
    expect(b).toEqual({ mean: 15, variance: 25, samples: 2 });
    b = absorb(b, 30, 0.1);
    expect(b.mean).toBeCloseTo(20, 10);
    expect(b.variance).toBeCloseTo(200 / 3, 10);
    // Past 1/alpha reports, a new report moves the mean by alpha of its difference.
    let c = { mean: 100, variance: 4, samples: 50 };
    c = absorb(c, 110, 0.1);
    expect(c.mean).toBeCloseTo(101, 10);
    expect(c.variance).toBeCloseTo(0.9 * (4 + 10 * 1), 10);
  });
});

describe('observe', () => {
  const steady = (v: number): AnomalySample => ({ latencyMs: v, errorRatePercent: 0.5, cpuPercent: 25, memoryPercent: 40 });

  it('flags nothing before minSamples reports, whatever they are', () => {
    let s: NodeAnomalyState | undefined;
    for (let i = 0; i < DEFAULT_ANOMALY_SETTINGS.minSamples; i++) {
      const r = observe(s, steady(i === 9 ? 1000 : 20), at(i));
      expect(r.transitions).toEqual([]);
      s = r.state;
    }
    expect(s!.baselines.latencyMs!.samples).toBe(10);
  });

  it('raises once above k deviations, keeps the baseline while flagged, clears below clearSigmas', () => {
    let s: NodeAnomalyState | undefined;
    for (let i = 0; i < 30; i++) s = observe(s, steady(20 + (i % 2 ? 2 : -2)), at(i)).state;
    const before = s!.baselines.latencyMs!;
    // Deviation 2 ms: 4σ is 28 ms. 27.9 is not flagged; 40 is.
    const below = observe(s, steady(before.mean + 3.9 * 2), at(30));
    expect(below.transitions).toEqual([]);
    const raised = observe(s, steady(40), at(31));
    expect(raised.transitions).toHaveLength(1);
    expect(raised.transitions[0]).toMatchObject({ kind: 'raised', metric: 'latencyMs', flag: { since: at(31), value: 40 } });
    expect(raised.transitions[0].flag.score).toBeGreaterThan(4);
    expect(raised.state.baselines.latencyMs).toEqual(before);
    // Still bad: still flagged, no new transition, baseline unmoved, `since` kept.
    const still = observe(raised.state, steady(45), at(32));
    expect(still.transitions).toEqual([]);
    expect(still.state.flags.latencyMs).toMatchObject({ since: at(31), value: 45 });
    expect(still.state.baselines.latencyMs).toEqual(before);
    // Between clearSigmas and sigmas: stays flagged (hysteresis).
    const between = observe(still.state, steady(before.mean + 3 * 2), at(33));
    expect(between.transitions).toEqual([]);
    expect(presentFlags(between.state).map((f) => f.metric)).toEqual(['latencyMs']);
    const cleared = observe(between.state, steady(20), at(34));
    expect(cleared.transitions).toMatchObject([{ kind: 'cleared', metric: 'latencyMs', flag: { since: at(31), value: 20 } }]);
    expect(cleared.state.flags).toEqual({});
    expect(cleared.state.baselines.latencyMs!.samples).toBe(before.samples + 1);
  });

  it('never flags a drop (lower latency, errors, CPU or memory is not a fault)', () => {
    let s: NodeAnomalyState | undefined;
    for (let i = 0; i < 30; i++) s = observe(s, steady(20 + (i % 2)), at(i)).state;
    expect(observe(s, { latencyMs: 0, errorRatePercent: 0, cpuPercent: 0, memoryPercent: 0 }, at(30)).transitions).toEqual([]);
  });

  it('applies the deviation floor to a metric that never moved', () => {
    let s: NodeAnomalyState | undefined;
    for (let i = 0; i < 20; i++) s = observe(s, { latencyMs: 0, errorRatePercent: 0, cpuPercent: 10, memoryPercent: 50 }, at(i)).state;
    // Floor 1 ms: 3 ms is 3 deviations, 5 ms is 5.
    expect(observe(s, { latencyMs: 3, errorRatePercent: 0, cpuPercent: 10, memoryPercent: 50 }, at(20)).transitions).toEqual([]);
    expect(observe(s, { latencyMs: 5, errorRatePercent: 0, cpuPercent: 10, memoryPercent: 50 }, at(20)).transitions).toMatchObject([
      { kind: 'raised', metric: 'latencyMs' },
    ]);
  });

  it('keeps a metric the report lacks as it was', () => {
    let s: NodeAnomalyState | undefined;
    for (let i = 0; i < 12; i++) s = observe(s, steady(20 + (i % 2)), at(i)).state;
    const r = observe(s, { ...steady(20), cpuPercent: Number.NaN }, at(12));
    expect(r.state.baselines.cpuPercent).toEqual(s!.baselines.cpuPercent);
  });
});

describe('a young baseline that spread less than the metric does (the CI case)', () => {
  it('is padded by the floor: cpu 25 ± 3 seen as 23.74 ± 1.0 over 10 reports does not flag a healthy 27.94', () => {
    let s: NodeAnomalyState | undefined;
    for (let i = 0; i < 10; i++) s = observe(s, { latencyMs: 20, errorRatePercent: 0.5, cpuPercent: i % 2 ? 24.741 : 22.741, memoryPercent: 40 }, at(i)).state;
    expect(s!.baselines.cpuPercent).toMatchObject({ samples: 10 });
    expect(Math.sqrt(s!.baselines.cpuPercent!.variance)).toBeCloseTo(1, 5);
    expect(observe(s, { latencyMs: 20, errorRatePercent: 0.5, cpuPercent: 27.94, memoryPercent: 40 }, at(10)).transitions).toEqual([]);
    // A real jump still raises: 10 points above is 7 padded deviations.
    expect(observe(s, { latencyMs: 20, errorRatePercent: 0.5, cpuPercent: 33.741, memoryPercent: 40 }, at(10)).transitions).toMatchObject([
      { kind: 'raised', metric: 'cpuPercent' },
    ]);
  });
});

describe('settings', () => {
  it('accepts the defaults and refuses nonsense', () => {
    expect(checkAnomalySettings(DEFAULT_ANOMALY_SETTINGS)).toEqual([]);
    expect(checkAnomalySettings({ ...DEFAULT_ANOMALY_SETTINGS, alpha: 0, sigmas: -1, clearSigmas: 9, minSamples: 1 })).toHaveLength(4);
  });
});

describe('on the simulated fleet (simulation.ts, the generator the simulated agents report from)', () => {
  it('detects a +5 ms latency fault within one report and clears within a report of its removal', () => {
    const random = seededRandom(7);
    const warm = run(undefined, HEALTHY_TRAFFIC, random, 30);
    const bad = run(warm.state, { ...HEALTHY_TRAFFIC, latencyMeanMs: 25 }, random, 3, 30);
    expect(bad.transitions).toMatchObject([{ kind: 'raised', metric: 'latencyMs' }]);
    expect(bad.transitions[0].flag.since).toBe(at(30));
    const good = run(bad.state, HEALTHY_TRAFFIC, random, 1, 33);
    expect(good.transitions).toMatchObject([{ kind: 'cleared', metric: 'latencyMs' }]);
  });

  it('detects CPU +15 points and error rate +1 point', () => {
    const random = seededRandom(11);
    const warm = run(undefined, HEALTHY_TRAFFIC, random, 30);
    const bad = run(warm.state, { ...HEALTHY_TRAFFIC, cpuPercent: 40, errorRatePercent: 1.5 }, random, 1, 30);
    expect(bad.transitions.map((t) => t.metric).sort()).toEqual(['cpuPercent', 'errorRatePercent']);
  });

  it('false positives: 40 seeded healthy nodes × 500 reports (one report per 10 s: 40 × 83 min) raise at most 0.01 % flags per metric-report', () => {
    const nodes = 40;
    const reports = 500;
    let judged = 0;
    let raised = 0;
    const byMetric: Record<string, number> = Object.fromEntries(ANOMALY_METRICS.map((m) => [m, 0]));
    for (let seed = 1; seed <= nodes; seed++) {
      // The simulated agent's own window (1,000 requests per 10 s report).
      const r = run(undefined, HEALTHY_TRAFFIC, seededRandom(seed), reports, 0, HEALTHY_TRAFFIC.requests);
      judged += (reports - DEFAULT_ANOMALY_SETTINGS.minSamples) * ANOMALY_METRICS.length;
      for (const t of r.transitions.filter((x) => x.kind === 'raised')) {
        raised++;
        byMetric[t.metric]++;
      }
    }
    const rate = raised / judged;
    const perNodeDay = (raised / (nodes * reports)) * 8640;
    console.log(
      `anomaly false positives on the simulated fleet: ${raised} flags in ${judged} metric-reports = ${(rate * 100).toFixed(4)} % ` +
        `(${perNodeDay.toFixed(2)} per node-day at one report per 10 s); by metric ${JSON.stringify(byMetric)}`,
    );
    expect(judged).toBe(nodes * (reports - 10) * 4);
    expect(rate).toBeLessThanOrEqual(0.0001);
  });
});
