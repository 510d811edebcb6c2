import { describe, expect, it } from 'vitest';
import { costOf, PRICES_USD, usd } from '../../../scripts/lib/prices.ts';

describe('the cost of billable usage', () => {
  it('prices each kind of usage and sums them', () => {
    const c = costOf({
      stateTransitions: 1000,
      lambdaRequests: 1_000_000,
      lambdaGbSeconds: 100,
      dynamoReadUnits: 1_000_000,
      dynamoWriteUnits: 1_000_000,
      snsPublishes: 1_000_000,
      apiRequests: 1_000_000,
    });
    expect(c.stateTransitions).toBeCloseTo(0.025, 10);
    expect(c.lambdaRequests).toBeCloseTo(0.2, 10);
    expect(c.lambdaGbSeconds).toBeCloseTo(0.00166667, 8);
    expect(c.dynamoReadUnits).toBeCloseTo(0.125, 10);
    expect(c.dynamoWriteUnits).toBeCloseTo(0.625, 10);
    expect(c.snsPublishes).toBeCloseTo(0.5, 10);
    expect(c.apiRequests).toBeCloseTo(3.5, 10);
    expect(c.total).toBeCloseTo(0.025 + 0.2 + 0.00166667 + 0.125 + 0.625 + 0.5 + 3.5, 6);
    expect(PRICES_USD.codeDeployOnPremisesInstanceUpdate).toBe(0.02);
  });

  it('prints dollars with the digits a fraction of a cent needs', () => {
    expect(usd(12.345)).toBe('$12.35');
    expect(usd(0.0234)).toBe('$0.0234');
    expect(usd(0.000123)).toBe('$0.000123');
  });
});
