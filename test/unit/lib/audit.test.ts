import { describe, expect, it } from 'vitest';

describe('traceRoot', () => {
  it('keeps the X-Ray root id of a Lambda trace header', async () => {
    const { traceRoot } = await import('../../../functions/lib/traceContext.ts');
    expect(traceRoot('Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1')).toBe('1-5759e988-bd862e3fe1be46a994272793');
    expect(traceRoot(undefined)).toBeUndefined();
  });
});
