import { describe, expect, it } from 'vitest';
import { rolling } from '../../../functions/strategies/rolling.ts';
import { expectModuleMatchesAsl, fleet, settings } from './conformance.ts';

describe('Rolling strategy', () => {
  it('plans batches of rollingBatchSize, widened so a huge fleet stays within maxSequentialBatches', () => {
    expect(rolling.plan(fleet(10), settings, {}).batches).toHaveLength(5);
    expect(rolling.plan(fleet(10), settings, {}).batches[0]).toEqual(['n-1', 'n-2']);
    expect(
      rolling.plan(
        Array.from({ length: 10_000 }, (_, i) => ({ nodeId: `n${i}`, address: '' })),
        settings,
        {},
      ).batches,
    ).toHaveLength(500);
  });

  it('agrees with its ASL file (strategy name, Map concurrency, functions)', () => expectModuleMatchesAsl(rolling));
});
