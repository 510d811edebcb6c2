import { averageMetrics, planWaves, sampleSetOf } from '../domain/canary.ts';
import { StageRejection } from '../domain/errors.ts';
import { planBatches } from '../domain/strategy.ts';
import { defineStrategy, ENVIRONMENT_STEPS } from './types.ts';

/** Nodes sampled for a canary baseline: enough for stable averages, bounded for huge fleets. */
export const BASELINE_SAMPLE = 200;

/** Cumulative waves, each baked and judged against the metric baseline captured at plan time. */
export const canary = defineStrategy({
  name: 'Canary',
  description: 'cumulative waves, each judged against a metric baseline',
  stateMachine: { id: 'Canary', file: 'statemachines/canary.asl.json', functions: [...ENVIRONMENT_STEPS, 'CanaryGate', 'AnalyzeCanary'] },
  // Waves one after another; a wave's batches in parallel.
  mapConcurrency: { Waves: 1, DeployWave: 20 },
  usesColours: false,
  plan: (nodes, s) => {
    const sorted = planBatches(
      nodes.map((n) => n.nodeId),
      Math.max(nodes.length, 1),
    ).flat();
    const batches: string[][] = [];
    const waves: number[][] = [];
    let offset = 0;
    for (const size of planWaves(sorted.length, s.canaryWaves)) {
      const wave: number[] = [];
      for (const b of planBatches(sorted.slice(offset, offset + size), s.nodesPerBatch)) {
        wave.push(batches.length);
        batches.push(b);
      }
      waves.push(wave);
      offset += size;
    }
    return { batches, waves };
  },
  captureBaseline: async (environment, nodes, deps) => {
    const reports = await deps.metrics(nodes.slice(0, BASELINE_SAMPLE));
    if (reports.length === 0) throw new StageRejection('BaselineUnavailable', `no ${environment} node reported metrics for the canary baseline`);
    return { ...averageMetrics(reports), sampleSet: sampleSetOf(reports) };
  },
});
