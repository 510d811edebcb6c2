/** What every strategy module must agree on with its ASL file; each strategy's test runs it. */
import { expect } from 'vitest';
import { functionArnKey } from '../../../functions/catalog.ts';
import type { StrategyModule } from '../../../functions/strategies/types.ts';
import { allStates, placeholders } from '../asl.ts';

export function expectModuleMatchesAsl(strategy: StrategyModule): void {
  const states = allStates(strategy.stateMachine.file);
  // PlanEnvironment is told which strategy it plans for, by name.
  expect(states.get('PlanEnvironment')?.Parameters?.strategy).toBe(strategy.name);
  // The Map concurrency the module states is the one its ASL runs with.
  const maps = Object.fromEntries([...states].filter(([, s]) => s.Type === 'Map').map(([name, s]) => [name, s.MaxConcurrency]));
  expect(maps).toEqual(strategy.mapConcurrency);
  // It references exactly the functions it declares, and starts no other state machine.
  expect(placeholders(strategy.stateMachine.file)).toEqual(new Set(strategy.stateMachine.functions.map(functionArnKey)));
}

/** A small fleet, half blue and half green, in shuffled order (plans sort it). */
export const fleet = (n: number) =>
  Array.from({ length: n }, (_, i) => ({
    nodeId: `n-${((i * 7) % n) + 1}`,
    address: 'http://127.0.0.1:1',
    colour: ((i * 7) % n < n / 2 ? 'blue' : 'green') as 'blue' | 'green',
  }));

export const settings = { nodesPerBatch: 3, rollingBatchSize: 2, maxSequentialBatches: 500, canaryWaves: [10, 30, 50, 100] };
