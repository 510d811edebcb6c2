import type { Strategy } from './environments.ts';
import { planWaves } from './canary.ts';

/** Split nodes into batches, in a stable order (so a retried plan is the same plan). */
export function planBatches(nodeIds: string[], batchSize: number): string[][] {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batch size must be a positive integer, got ${batchSize}`);
  const sorted = [...nodeIds].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const batches: string[][] = [];
  for (let i = 0; i < sorted.length; i += batchSize) batches.push(sorted.slice(i, i + batchSize));
  return batches;
}

export type Colour = 'blue' | 'green';
export const otherColour = (c: Colour): Colour => (c === 'blue' ? 'green' : 'blue');

export interface StrategySettings {
  /** Nodes per Lambda invocation (Direct, Blue-Green and Canary waves). */
  nodesPerBatch: number;
  rollingBatchSize: number;
  maxSequentialBatches: number;
  canaryWaves: number[];
}

export interface EnvironmentPlan {
  batches: string[][];
  /** Canary: the batch numbers of each wave, in order. */
  waves?: number[][];
  /** Blue-Green: the colour serving traffic now, and the idle one being deployed. */
  activeColour?: Colour;
  idleColour?: Colour;
}

/** Which nodes of an environment a strategy changes, and in which groups. */
export function planEnvironment(
  strategy: Strategy,
  nodes: { nodeId: string; colour?: Colour }[],
  s: StrategySettings,
  activeColour: Colour = 'blue',
): EnvironmentPlan {
  const ids = nodes.map((n) => n.nodeId);
  switch (strategy) {
    case 'Direct':
      return { batches: planBatches(ids, s.nodesPerBatch) };
    case 'Rolling':
      // A health check follows every batch; batches widen so a huge fleet stays within history limits.
      return { batches: planBatches(ids, Math.max(s.rollingBatchSize, Math.ceil(ids.length / s.maxSequentialBatches))) };
    case 'BlueGreen': {
      const idleColour = otherColour(activeColour);
      const idle = nodes.filter((n) => n.colour === idleColour).map((n) => n.nodeId);
      if (idle.length === 0) throw new Error(`no ${idleColour} nodes to deploy to: a blue-green environment needs nodes of both colours`);
      return { batches: planBatches(idle, s.nodesPerBatch), activeColour, idleColour };
    }
    case 'Canary': {
      const sorted = planBatches(ids, Math.max(ids.length, 1)).flat();
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
    }
  }
}
