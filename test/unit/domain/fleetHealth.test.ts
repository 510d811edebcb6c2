import { describe, expect, it } from 'vitest';
import { nodesByHealth } from '../../../functions/domain/fleetHealth.ts';

const fleet = [
  {
    environment: 'Development' as const,
    nodes: [{ lastHealth: { status: 'healthy' } }, { lastHealth: { status: 'unhealthy' } }, {}, { lastHealth: { status: 'healthy' } }],
  },
  { environment: 'QA' as const, nodes: [] },
  { environment: 'Production' as const, nodes: [{ lastHealth: {} }, { lastHealth: { status: 'degraded-by-a-newer-agent' } }] },
];

describe('nodesByHealth', () => {
  it('counts each environment’s nodes by last health, Unknown before the first report (as /metrics serves it)', () => {
    expect(nodesByHealth(fleet)).toEqual([
      { environment: 'Development', status: 'healthy', value: 2 },
      { environment: 'Development', status: 'unhealthy', value: 1 },
      { environment: 'Development', status: 'Unknown', value: 1 },
      { environment: 'Production', status: 'Unknown', value: 1 },
      { environment: 'Production', status: 'degraded-by-a-newer-agent', value: 1 },
    ]);
  });

  it('with zeros, has every known status of every environment (what CloudWatch gets each minute), and statuses it does not know', () => {
    const counts = nodesByHealth(fleet, { zeros: true });
    expect(counts.filter((c) => c.environment === 'QA')).toEqual([
      { environment: 'QA', status: 'healthy', value: 0 },
      { environment: 'QA', status: 'unhealthy', value: 0 },
      { environment: 'QA', status: 'Unknown', value: 0 },
    ]);
    expect(counts.filter((c) => c.environment === 'Production').map((c) => [c.status, c.value])).toEqual([
      ['healthy', 0],
      ['unhealthy', 0],
      ['Unknown', 1],
      ['degraded-by-a-newer-agent', 1],
    ]);
    // The totals are the nodes, whichever way they are counted.
    const total = (cs: { value: number }[]) => cs.reduce((a, c) => a + c.value, 0);
    expect(total(counts)).toBe(6);
    expect(total(nodesByHealth(fleet))).toBe(6);
  });
});
