import { describe, expect, it } from 'vitest';
import { nodeStatus, selectTargets, unreachableMessage, type MembershipView } from '../../../functions/domain/membership.ts';

const now = Date.parse('2026-01-01T00:01:00Z');
const ago = (s: number) => new Date(now - s * 1000).toISOString();
const enrolled = (nodeId: string, lastSeen: number, heartbeatSeconds = 10): MembershipView => ({
  nodeId,
  enrolment: { enrolledAt: ago(3600), heartbeatSeconds },
  lastSeenAt: ago(lastSeen),
});

describe('node status', () => {
  it('is Online while the last heartbeat is at most 3 intervals old, Unreachable after', () => {
    expect(nodeStatus(enrolled('a', 0), now, 3)).toBe('Online');
    expect(nodeStatus(enrolled('a', 30), now, 3)).toBe('Online');
    expect(nodeStatus(enrolled('a', 31), now, 3)).toBe('Unreachable');
    expect(nodeStatus(enrolled('a', 3, 1), now, 3)).toBe('Online');
    expect(nodeStatus(enrolled('a', 4, 1), now, 3)).toBe('Unreachable');
    expect(nodeStatus(enrolled('a', 31), now, 5)).toBe('Online');
  });

  it('counts enrolling as being seen, before the first heartbeat', () => {
    expect(nodeStatus({ nodeId: 'a', enrolment: { enrolledAt: ago(5), heartbeatSeconds: 10 } }, now, 3)).toBe('Online');
    expect(nodeStatus({ nodeId: 'a', enrolment: { enrolledAt: ago(40), heartbeatSeconds: 10 } }, now, 3)).toBe('Unreachable');
  });

  it('treats nodes that never enrolled as managed by the fleet (Online), and decommissioned as such', () => {
    expect(nodeStatus({ nodeId: 'dev-01' }, now, 3)).toBe('Online');
    expect(nodeStatus({ nodeId: 'dev-01', decommissionedAt: ago(1) }, now, 3)).toBe('Decommissioned');
    expect(nodeStatus({ ...enrolled('a', 0), decommissionedAt: ago(1) }, now, 3)).toBe('Decommissioned');
  });
});

describe('plan targets', () => {
  const nodes = [{ nodeId: 'dev-01' }, enrolled('host-b', 100), enrolled('host-a', 1), enrolled('host-c', 500), { nodeId: 'gone', decommissionedAt: ago(1) }];

  it('fails, naming the unreachable nodes, unless told to skip them', () => {
    expect(selectTargets(nodes, 'fail', now, 3)).toEqual({ ok: false, unreachable: ['host-b', 'host-c'] });
  });

  it('skips unreachable nodes on request and never targets decommissioned ones', () => {
    const r = selectTargets(nodes, 'skip', now, 3);
    expect(r).toEqual({ ok: true, targets: [nodes[0], nodes[2]], skipped: ['host-b', 'host-c'] });
    const healthy = selectTargets([nodes[0], nodes[2], nodes[4]], 'fail', now, 3);
    expect(healthy).toEqual({ ok: true, targets: [nodes[0], nodes[2]], skipped: [] });
  });

  it('says which nodes, for how long, and what to do', () => {
    expect(unreachableMessage('Development', ['host-b'], 3)).toBe(
      '1 node in Development is unreachable (no heartbeat for 3 intervals): host-b; request the deployment with "unreachableNodes": "skip" to leave them unchanged, or decommission them',
    );
    const many = Array.from({ length: 25 }, (_, i) => `h-${i}`);
    expect(unreachableMessage('QA', many, 3)).toContain('h-19 and 5 more');
  });
});
