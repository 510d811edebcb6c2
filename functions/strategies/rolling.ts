import { planBatches } from '../domain/strategy.ts';
import { defineStrategy, ENVIRONMENT_STEPS } from './types.ts';

/** One batch at a time, each followed by a health check. */
export const rolling = defineStrategy({
  name: 'Rolling',
  description: 'one batch at a time, each health-checked',
  stateMachine: { id: 'Rolling', file: 'statemachines/rolling.asl.json', functions: [...ENVIRONMENT_STEPS, 'StabiliseBatches'] },
  mapConcurrency: { DeployBatchesInTurn: 1 },
  usesColours: false,
  plan: (nodes, s) => {
    const ids = nodes.map((n) => n.nodeId);
    // Batches widen so a huge fleet stays within the execution history limit.
    return { batches: planBatches(ids, Math.max(s.rollingBatchSize, Math.ceil(ids.length / s.maxSequentialBatches))) };
  },
});
