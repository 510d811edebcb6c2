import { planBatches } from '../domain/strategy.ts';
import { defineStrategy, ENVIRONMENT_STEPS } from './types.ts';

/** Every node at once: batches only keep state small, and run in parallel. */
export const direct = defineStrategy({
  name: 'Direct',
  description: 'every node at once, in parallel batches',
  stateMachine: { id: 'Direct', file: 'statemachines/direct.asl.json', functions: [...ENVIRONMENT_STEPS, 'StabiliseBatches'] },
  mapConcurrency: { DeployAllBatches: 20, VerifyAllBatches: 20 },
  usesColours: false,
  plan: (nodes, s) => ({
    batches: planBatches(
      nodes.map((n) => n.nodeId),
      s.nodesPerBatch,
    ),
  }),
});
