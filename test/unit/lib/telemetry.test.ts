import { describe, expect, it } from 'vitest';
import { parseTraceparent } from '../../../functions/agent/protocol.ts';
import { withCorrelation } from '../../../functions/lib/telemetry.ts';
import { CORRELATION_ID, currentCorrelation, traceIdOf, traceparent } from '../../../functions/lib/traceContext.ts';

describe('trace ids', () => {
  it("takes X-Ray's root in Lambda, so a traced execution is one trace from API to agent", () => {
    expect(traceIdOf({ executionId: 'dep-x' }, 'Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1')).toBe(
      '5759e988bd862e3fe1be46a994272793',
    );
  });

  it('derives one trace id per execution elsewhere, and a fresh one for work outside any execution', () => {
    const a = traceIdOf({ executionId: 'dep-abc' }, undefined);
    expect(a).toMatch(/^[0-9a-f]{32}$/);
    expect(traceIdOf({ executionId: 'dep-abc' }, undefined)).toBe(a);
    expect(traceIdOf({ executionId: 'dep-abd' }, undefined)).not.toBe(a);
    expect(traceIdOf({}, undefined)).not.toBe(traceIdOf({}, undefined));
    // A malformed X-Ray header is not taken for a trace id.
    expect(traceIdOf({ executionId: 'dep-abc' }, 'Root=1-zz-yy')).toBe(a);
  });

  it('makes W3C traceparent headers that the agent side reads back (and refuses malformed ones)', () => {
    const header = withCorrelation({ executionId: 'dep-abc' }, () => traceparent());
    expect(header).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(parseTraceparent(header)).toBe(traceIdOf({ executionId: 'dep-abc' }, undefined));
    for (const bad of [
      undefined,
      '',
      '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331',
      '01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      '00-00000000000000000000000000000000-b7ad6b7169203331-01',
      '00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01',
      '00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01',
      '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\nx=1',
    ]) {
      expect(parseTraceparent(bad), String(bad)).toBeUndefined();
    }
    expect(parseTraceparent(['00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'])).toBe('0af7651916cd43dd8448eb211c80319c');
  });
});

describe('correlation of the work in hand', () => {
  it('keeps concurrent units of work apart (the local cloud runs many invocations in one process)', async () => {
    const seen = await Promise.all(
      ['dep-one', 'dep-two', 'dep-three'].map((executionId, i) =>
        withCorrelation({ executionId, route: 'POST /api/v1/deployments' }, async () => {
          await new Promise((r) => setTimeout(r, 30 - i * 10));
          return withCorrelation({ environment: 'QA' }, async () => {
            await new Promise((r) => setTimeout(r, 5));
            return currentCorrelation();
          });
        }),
      ),
    );
    expect(seen).toEqual([
      { executionId: 'dep-one', route: 'POST /api/v1/deployments', environment: 'QA' },
      { executionId: 'dep-two', route: 'POST /api/v1/deployments', environment: 'QA' },
      { executionId: 'dep-three', route: 'POST /api/v1/deployments', environment: 'QA' },
    ]);
    expect(currentCorrelation()).toEqual({});
  });

  it('accepts only short printable correlation ids from callers', () => {
    expect(CORRELATION_ID.test('req-42.a_b:c')).toBe(true);
    for (const bad of ['', 'a b', 'x\ny', 'a"b', 'x'.repeat(129), 'é']) expect(CORRELATION_ID.test(bad), bad).toBe(false);
  });
});
