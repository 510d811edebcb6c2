import { describe, expect, it } from 'vitest';
import { StageRejection } from '../../../functions/domain/errors.ts';
import { BASELINE_SAMPLE, canary } from '../../../functions/strategies/canary.ts';
import { expectModuleMatchesAsl, fleet, settings } from './conformance.ts';
import { fakeDeps } from './deps.ts';

describe('Canary strategy', () => {
  it('plans waves of batches that reach every node once', () => {
    const c = canary.plan(fleet(10), settings, {});
    expect(c.waves).toEqual([[0], [1], [2], [3, 4]]);
    expect(c.batches.flat()).toHaveLength(10);
    expect(new Set(c.batches.flat()).size).toBe(10);
    expect(c.batches[0]).toEqual(['n-1']);
  });

  it('captures the metric baseline at plan time from a bounded sample', async () => {
    const { deps, asked } = fakeDeps();
    const many = Array.from({ length: BASELINE_SAMPLE + 50 }, (_, i) => ({ nodeId: `n-${i}`, address: '' }));
    expect(await canary.captureBaseline!('Production', many, deps)).toMatchObject({ cpuPercent: 20, samples: BASELINE_SAMPLE });
    expect(asked[0]).toHaveLength(BASELINE_SAMPLE);
    // The per-node samples the statistical judge and rejudge read, one per node asked.
    const b = await canary.captureBaseline!('Production', many.slice(0, 3), deps);
    expect(b.sampleSet?.nodes.map((n) => n.nodeId)).toEqual(['n-0', 'n-1', 'n-2']);
  });

  it('refuses to plan without a baseline (no node reported metrics)', async () => {
    const { deps } = fakeDeps('blue', () => true);
    const e = await canary.captureBaseline!('Production', fleet(3), deps).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(StageRejection);
    expect(e).toMatchObject({ code: 'BaselineUnavailable', message: 'no Production node reported metrics for the canary baseline' });
  });

  it('agrees with its ASL file (strategy name, Map concurrency, functions)', () => expectModuleMatchesAsl(canary));
});
