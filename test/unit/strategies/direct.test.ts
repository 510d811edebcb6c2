import { describe, expect, it } from 'vitest';
import { direct } from '../../../functions/strategies/direct.ts';
import { expectModuleMatchesAsl, fleet, settings } from './conformance.ts';

describe('Direct strategy', () => {
  it('plans every node in batches of nodesPerBatch, in natural order', () => {
    expect(direct.plan(fleet(10), settings, {})).toEqual({ batches: [['n-1', 'n-2', 'n-3'], ['n-4', 'n-5', 'n-6'], ['n-7', 'n-8', 'n-9'], ['n-10']] });
  });

  it('needs no hooks and no colours', () => {
    expect(direct.prepare).toBeUndefined();
    expect(direct.captureBaseline).toBeUndefined();
    expect(direct.usesColours).toBe(false);
  });

  it('agrees with its ASL file (strategy name, Map concurrency, functions)', () => expectModuleMatchesAsl(direct));
});
