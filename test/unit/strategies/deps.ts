import type { PlanDeps, PlanNode } from '../../../functions/strategies/types.ts';

/** Fake planning I/O: a fixed live colour, and metrics from every node not listed as silent. */
export function fakeDeps(activeColour: 'blue' | 'green' = 'blue', silent: (n: PlanNode) => boolean = () => false) {
  const asked: PlanNode[][] = [];
  const deps: PlanDeps = {
    activeColour: async () => activeColour,
    metrics: async (nodes) => {
      asked.push([...nodes]);
      return nodes
        .filter((n) => !silent(n))
        .map((n) => ({ nodeId: n.nodeId, cpuPercent: 20, memoryPercent: 40, latencyMs: 10, errorRatePercent: 0.5, requestsPerSecond: 10 }));
    },
  };
  return { deps, asked };
}
