import { describe, expect, it } from 'vitest';
import { planBatches } from '../../../functions/domain/strategy.ts';

describe('planBatches', () => {
  it('splits nodes into stable batches in natural order', () => {
    expect(planBatches(['n-10', 'n-2', 'n-1'], 2)).toEqual([['n-1', 'n-2'], ['n-10']]);
    expect(planBatches([], 5)).toEqual([]);
    expect(() => planBatches(['a'], 0)).toThrow();
    expect(
      planBatches(
        Array.from({ length: 10_000 }, (_, i) => `n-${i}`),
        50,
      ),
    ).toHaveLength(200);
  });
});
