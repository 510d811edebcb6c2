import { describe, expect, it } from 'vitest';
import type { NodeRecord } from '../../../functions/lib/nodes.ts';
import { placeNode, routePlan, type RouteTableSpec } from '../../../functions/lib/trafficRouter.ts';

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

describe('one node joining, moving or leaving a routed table', () => {
  const b = (n: NodeRecord) => ({ nodeId: n.nodeId, ...(n.colour ? { colour: n.colour } : {}), url: n.workloadUrl! });
  const names = (t: RouteTableSpec | undefined) =>
    t && { groups: t.groups.map((g) => [g.name, g.weight, g.backends.map((x) => x.nodeId)]), preview: t.preview?.map((x) => x.nodeId) };

  it('a new node of the live colour joins the live group, of the idle colour the preview; nothing else moves', () => {
    const table: RouteTableSpec = { groups: [{ name: 'green', weight: 100, backends: [b(node('c', 'green'))] }], preview: [b(node('a', 'blue'))] };
    expect(names(placeNode(table, node('e', 'green'), true, 'green'))).toEqual({ groups: [['green', 100, ['c', 'e']]], preview: ['a'] });
    expect(names(placeNode(table, node('f', 'blue'), true, 'green'))).toEqual({ groups: [['green', 100, ['c']]], preview: ['a', 'f'] });
  });

  it('during a canary split a new node joins the stable group, never the canary', () => {
    const table: RouteTableSpec = {
      groups: [
        { name: 'canary', weight: 30, backends: [b(node('p1'))] },
        { name: 'stable', weight: 70, backends: [b(node('p2'))] },
      ],
      preview: [],
    };
    expect(names(placeNode(table, node('p9'), false, 'blue'))).toEqual({
      groups: [
        ['canary', 30, ['p1']],
        ['stable', 70, ['p2', 'p9']],
      ],
      preview: [],
    });
  });

  it('a moved node keeps its place with its new endpoint; a node that left or lost its endpoint is removed; no change is undefined', () => {
    const table: RouteTableSpec = {
      groups: [
        { name: 'canary', weight: 30, backends: [b(node('p1'))] },
        { name: 'stable', weight: 70, backends: [b(node('p2'))] },
      ],
    };
    const moved = { ...node('p1'), workloadUrl: 'http://10.0.0.1:8080/' };
    expect(placeNode(table, moved, false, 'blue')?.groups[0].backends).toEqual([{ nodeId: 'p1', url: 'http://10.0.0.1:8080/' }]);
    expect(names(placeNode(table, { ...node('p2'), decommissionedAt: 'x' }, false, 'blue'))).toEqual({
      groups: [
        ['canary', 30, ['p1']],
        ['stable', 70, []],
      ],
      preview: undefined,
    });
    expect(names(placeNode(table, node('p2', undefined, false), false, 'blue'))?.groups[1]).toEqual(['stable', 70, []]);
    expect(placeNode(table, node('p2'), false, 'blue')).toBeUndefined();
    expect(placeNode(table, node('zz', undefined, false), false, 'blue')).toBeUndefined();
  });

  it('an empty table starts with the node: one group of 100 %', () => {
    expect(names(placeNode({ groups: [] }, node('p1'), false, 'blue'))).toEqual({ groups: [['stable', 100, ['p1']]], preview: undefined });
    expect(names(placeNode({ groups: [], preview: [] }, node('a', 'blue'), true, 'blue'))).toEqual({ groups: [['blue', 100, ['a']]], preview: [] });
  });
});
