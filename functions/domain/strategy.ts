/**
 * The vocabulary every strategy plans with. The strategies themselves live in
 * functions/strategies/ (one module each) and are reached through its registry.
 */

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
