import { describe, expect, it } from 'vitest';
import type { NodeRecord } from '../../../functions/lib/nodes.ts';
import { routePlan } from '../../../functions/lib/trafficRouter.ts';

const node = (nodeId: string, colour?: 'blue' | 'green', workload = true): NodeRecord => ({
  environment: 'Staging',
  nodeId,
  address: `http://127.0.0.1:1/${nodeId}`,
  ...(workload ? { workloadUrl: `http://127.0.0.1:1/${nodeId}/workload` } : {}),
  colour,
  modules: {},
  registeredAt: '',
});
const ids = (ns: NodeRecord[]) => ns.map((n) => n.nodeId);

describe('what a weighted router should route', () => {
  it('Blue-Green: the live colour takes everything, the other colour is the preview; nodes without a workload endpoint get nothing', () => {
    const nodes = [node('a', 'blue'), node('b', 'blue', false), node('c', 'green'), node('d', 'green')];
    const plan = routePlan(nodes, true, 'green');
    expect(plan.groups.map((g) => [g.name, g.weight, ids(g.nodes)])).toEqual([['green', 100, ['c', 'd']]]);
    expect(ids(plan.preview)).toEqual(['a']);
  });

  it('Canary: the wave share on the canary nodes, the rest on the others; 0 % takes the canary out; no canary nodes, one group of all', () => {
    const nodes = ['p1', 'p2', 'p3', 'p4'].map((id) => node(id));
    expect(routePlan(nodes, false, 'blue', { nodes: ['p1'], percent: 30 }).groups.map((g) => [g.name, g.weight, ids(g.nodes)])).toEqual([
      ['canary', 30, ['p1']],
      ['stable', 70, ['p2', 'p3', 'p4']],
    ]);
    expect(routePlan(nodes, false, 'blue', { nodes: ['p1', 'p2'], percent: 0 }).groups.map((g) => [g.name, g.weight])).toEqual([
      ['canary', 0],
      ['stable', 100],
    ]);
    expect(routePlan(nodes, false, 'blue', { nodes: [], percent: 100 }).groups.map((g) => [g.name, g.weight, ids(g.nodes)])).toEqual([
      ['stable', 100, ['p1', 'p2', 'p3', 'p4']],
    ]);
  });
});
