import { describe, expect, it } from 'vitest';
import {
  clusterMetrics,
  delivers,
  eventFromNodeChange,
  eventsFromDeploymentChange,
  EVENT_TYPES,
  inSeqOrder,
  matches,
  mayRead,
  parseClientMessage,
  readersOf,
  seqKey,
} from '../../../functions/domain/liveEvents.ts';
import { ROUTES } from '../../../functions/catalog.ts';
import type { DeploymentRecord } from '../../../functions/domain/deployment.ts';

const base = (over: Partial<DeploymentRecord> = {}): Partial<DeploymentRecord> => ({
  executionId: 'exec-1',
  moduleName: 'demo-kernel',
  version: '1.1.0',
  targetEnvironment: 'Production',
  status: 'Running',
  createdAt: '2026-11-29T10:00:00.000Z',
  updatedAt: '2026-11-29T10:00:01.000Z',
  stageOrder: ['Build', 'Production'],
  stages: {
    Build: { name: 'Build', kind: 'check', status: 'Succeeded' },
    Production: { name: 'Production', kind: 'environment', status: 'Pending', environment: 'Production' },
  },
  ...over,
});

describe('client messages', () => {
  it('accepts the three subscriptions, with after on subscribe', () => {
    expect(parseClientMessage('{"action":"subscribe","all":true}')).toMatchObject({ ok: true, subscription: 'all' });
    expect(parseClientMessage('{"action":"subscribe","deploymentId":"d1","after":7}')).toMatchObject({
      ok: true,
      subscription: 'deployment#d1',
      message: { after: 7 },
    });
    expect(parseClientMessage('{"action":"unsubscribe","environment":"Production"}')).toMatchObject({ ok: true, subscription: 'environment#Production' });
  });

  it.each([
    ['not json', 'not JSON'],
    ['{"action":"subscribe"}', 'exactly one'],
    ['{"action":"subscribe","all":true,"environment":"QA"}', 'exactly one'],
    ['{"action":"subscribe","all":false}', 'all'],
    ['{"action":"subscribe","environment":"Moon"}', 'environment'],
    ['{"action":"subscribe","all":true,"after":-1}', 'after'],
    ['{"action":"subscribe","all":true,"after":1.5}', 'after'],
    ['{"action":"unsubscribe","all":true,"after":3}', 'subscribe only'],
    ['{"action":"subscribe","all":true,"extra":1}', ''],
    ['{"action":"publish","all":true}', 'action'],
  ])('refuses %s with a BadMessage that says why', (text, why) => {
    const r = parseClientMessage(text);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.code).toBe('BadMessage');
      expect(r.message).toContain(why);
    }
  });
});

describe('who receives what', () => {
  it('derives each event type’s readers from the GET route that reads the same data', () => {
    for (const type of EVENT_TYPES) {
      const readers = readersOf(type);
      expect(readers.length).toBeGreaterThan(0);
      expect(ROUTES.some((r) => r.method === 'GET' && r.roles === readers)).toBe(true);
    }
    expect(mayRead(['Viewer'], 'deployment.status')).toBe(true);
    expect(mayRead([], 'deployment.status')).toBe(false);
    expect(mayRead(['Stranger'], 'node.status')).toBe(false);
  });

  it('matches subscriptions by deployment, environment or all', () => {
    const e = { deploymentId: 'd1', environment: 'QA' as const };
    expect(matches(['all'], e)).toBe(true);
    expect(matches(['deployment#d1'], e)).toBe(true);
    expect(matches(['environment#QA'], e)).toBe(true);
    expect(matches(['deployment#d2', 'environment#Production'], e)).toBe(false);
    expect(matches([], e)).toBe(false);
    expect(matches(['environment#QA'], { environment: 'Production' })).toBe(false);
    // Both the role and the subscription must allow it.
    const ev = { type: 'deployment.status' as const, at: 'now', ...e };
    expect(delivers(['Viewer'], ['all'], ev)).toBe(true);
    expect(delivers([], ['all'], ev)).toBe(false);
    expect(delivers(['Admin'], ['deployment#d2'], ev)).toBe(false);
  });
});

describe('deployment changes → events', () => {
  it('a new deployment is one deployment.status with its status', () => {
    const events = eventsFromDeploymentChange(undefined, base({ status: 'Pending' }));
    expect(events).toEqual([
      expect.objectContaining({
        type: 'deployment.status',
        status: 'Pending',
        deploymentId: 'exec-1',
        environment: 'Production',
        at: '2026-11-29T10:00:01.000Z',
      }),
    ]);
  });

  it('a stage moving and the status changing: the stage first, then the status', () => {
    const before = base();
    const after = base({
      status: 'Succeeded',
      stages: {
        ...before.stages!,
        Production: { name: 'Production', kind: 'environment', status: 'Succeeded', environment: 'Production', nodesTotal: 4, nodesDeployed: 4 },
      },
    });
    const events = eventsFromDeploymentChange(before, after);
    expect(events.map((e) => e.type)).toEqual(['deployment.stage', 'deployment.status']);
    expect(events[0]).toMatchObject({ stage: 'Production', status: 'Succeeded', nodesTotal: 4, nodesDeployed: 4 });
    expect(events[1]).toMatchObject({ status: 'Succeeded', previousStatus: 'Running' });
  });

  it('nothing for a change that moves neither status nor progress (updatedAt alone)', () => {
    expect(eventsFromDeploymentChange(base(), base({ updatedAt: '2026-11-29T10:00:09.000Z' }))).toEqual([]);
    expect(eventsFromDeploymentChange(base(), undefined)).toEqual([]);
  });

  it('an approval gate opening and being decided', () => {
    const approval = { status: 'Pending', approvers: ['a'], quorum: 1, deadline: 'later', decisions: [] as unknown[] };
    const open = base({ status: 'WaitingForApproval', stages: { ...base().stages!, Production: { ...base().stages!.Production, approval } as never } });
    const requested = eventsFromDeploymentChange(base(), open);
    expect(requested.map((e) => e.type)).toEqual(['approval.requested', 'deployment.status']);
    expect(requested[0]).toMatchObject({ stage: 'Production', approvers: ['a'], quorum: 1 });
    const decided = base({
      status: 'Running',
      stages: {
        ...base().stages!,
        Production: { ...base().stages!.Production, approval: { ...approval, status: 'Approved', decisions: [{ by: 'a' }] } } as never,
      },
    });
    const out = eventsFromDeploymentChange(open, decided);
    expect(out.map((e) => e.type)).toEqual(['approval.decided', 'deployment.status']);
    expect(out[0]).toMatchObject({ status: 'Approved', decisions: [{ by: 'a' }] });
  });
});

describe('node changes → events', () => {
  const node = { environment: 'QA' as const, nodeId: 'n1', modules: { 'demo-kernel': { version: '1.0.0' } }, lastHealth: { status: 'healthy', at: 't1' } };

  it('health, version and removal are events; a heartbeat alone is not', () => {
    expect(eventFromNodeChange(node, { ...node, lastSeenAt: 'later' })).toBeUndefined();
    expect(eventFromNodeChange(node, { ...node, lastHealth: { status: 'unhealthy', at: 't2' } })).toMatchObject({
      type: 'node.status',
      environment: 'QA',
      nodeId: 'n1',
      health: 'unhealthy',
      at: 't2',
    });
    expect(eventFromNodeChange(node, { ...node, modules: { 'demo-kernel': { version: '1.1.0' } } })).toMatchObject({ modules: { 'demo-kernel': '1.1.0' } });
    expect(eventFromNodeChange(node, undefined)).toMatchObject({ type: 'node.status', nodeId: 'n1', removed: true });
    expect(eventFromNodeChange(undefined, node)).toMatchObject({ type: 'node.status', health: 'healthy' });
  });

  it('cluster.metrics counts live nodes by health and version', () => {
    const m = clusterMetrics('QA', [
      node,
      { ...node, nodeId: 'n2', modules: { 'demo-kernel': { version: '1.1.0' } } },
      { ...node, nodeId: 'n3', decommissionedAt: 'x' },
    ]);
    expect(m).toMatchObject({
      type: 'cluster.metrics',
      environment: 'QA',
      nodes: 2,
      health: { healthy: 2 },
      versions: { 'demo-kernel': { '1.0.0': 1, '1.1.0': 1 } },
    });
  });
});

describe('seq', () => {
  it('sort keys order as numbers; clients drop repeats and order by seq', () => {
    expect([seqKey(10), seqKey(9), seqKey(100)].sort()).toEqual([seqKey(9), seqKey(10), seqKey(100)]);
    expect(inSeqOrder([{ seq: 3 }, { seq: 1 }, { seq: 3 }, { seq: 2 }]).map((e) => e.seq)).toEqual([1, 2, 3]);
  });
});
