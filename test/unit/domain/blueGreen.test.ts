import { describe, expect, it } from 'vitest';
import { alignmentFor, misaligned, servedByColour, type ColouredNode } from '../../../functions/domain/blueGreen.ts';

const node = (nodeId: string, colour: 'blue' | 'green', modules: Record<string, string>): ColouredNode => ({
  nodeId,
  colour,
  modules: Object.fromEntries(Object.entries(modules).map(([m, version]) => [m, { version }])),
});

describe('Blue-Green alignment across modules', () => {
  const nodes = [
    node('stg-01', 'blue', { a: '1.0.0', b: '2.0.0' }),
    node('stg-02', 'blue', { a: '1.0.0', b: '2.0.0' }),
    node('stg-03', 'green', { a: '1.0.0', b: '1.0.0', c: '0.1.0' }),
    node('stg-04', 'green', { a: '1.1.0' }),
  ];

  it('takes what the live colour serves of every module but the deployed one, including modules it does not serve', () => {
    expect(servedByColour(nodes, 'blue', 'a')).toEqual({ versions: { b: '2.0.0', c: null }, mixed: [] });
    expect(servedByColour(nodes, 'green', 'c')).toEqual({ versions: { a: '1.1.0', b: '1.0.0' }, mixed: ['a', 'b'] });
  });

  it('a tie between live versions is settled the same way every time (highest version)', () => {
    const tie = [node('n1', 'blue', { b: '1.9.0' }), node('n2', 'blue', { b: '1.10.0' })];
    expect(servedByColour(tie, 'blue', 'a').versions).toEqual({ b: '1.10.0' });
    expect(servedByColour([...tie].reverse(), 'blue', 'a').versions).toEqual({ b: '1.10.0' });
  });

  it('lists what each idle node changes: installs, upgrades and removals; nothing for an aligned node', () => {
    const served = servedByColour(nodes, 'blue', 'a').versions;
    expect(alignmentFor(nodes[2], served)).toEqual({ b: { from: '1.0.0', to: '2.0.0' }, c: { from: '0.1.0', to: null } });
    expect(alignmentFor(nodes[3], served)).toEqual({ b: { from: null, to: '2.0.0' } });
    expect(alignmentFor(nodes[0], served)).toEqual({});
    expect(Object.keys(misaligned(nodes, 'green', served))).toEqual(['stg-03', 'stg-04']);
    expect(misaligned(nodes, 'blue', served)).toEqual({});
  });
});
