import { describe, expect, it } from 'vitest';
import { degradedMessage, isRepaired, sameStuckNodes, type DegradedMark } from '../../../functions/domain/degraded.ts';

const mark: DegradedMark = {
  deploymentId: 'dep-1',
  version: '1.1.0',
  since: '2026-11-29T04:00:00.000Z',
  stuckNodes: {
    'prod-02': { previousVersion: '1.0.0', message: 'prod-02 is unreachable: did not answer within 1500 ms' },
    'prod-04': { previousVersion: null, message: 'prod-04 is unreachable' },
  },
};
const runs =
  (versions: Record<string, string | null | undefined>) =>
  (id: string): string | null | undefined =>
    versions[id];
const noDesired = () => undefined;

describe('isRepaired: the environment is consistent again when every stuck node runs what it should', () => {
  it('no desired entry: each stuck node back on the version it ran before (null: the module unloaded)', () => {
    expect(isRepaired(mark, runs({ 'prod-02': '1.0.0', 'prod-04': null }), noDesired)).toBe(true);
    expect(isRepaired(mark, runs({ 'prod-02': '1.0.0', 'prod-04': '1.1.0' }), noDesired)).toBe(false);
    expect(isRepaired(mark, runs({ 'prod-02': '1.1.0', 'prod-04': null }), noDesired)).toBe(false);
  });

  it('a desired entry that applies to the node wins over the version it ran before', () => {
    const desired = () => ({ version: '1.0.5' });
    expect(isRepaired(mark, runs({ 'prod-02': '1.0.5', 'prod-04': '1.0.5' }), desired)).toBe(true);
    expect(isRepaired(mark, runs({ 'prod-02': '1.0.0', 'prod-04': null }), desired)).toBe(false);
    // The desired state may say "not loaded".
    expect(isRepaired(mark, runs({ 'prod-02': null, 'prod-04': null }), () => ({ version: null }))).toBe(true);
  });

  it('per node: an entry of the other blue-green colour does not apply, the previous version does', () => {
    const desired = (id: string) => (id === 'prod-02' ? { version: '1.0.5' } : undefined);
    expect(isRepaired(mark, runs({ 'prod-02': '1.0.5', 'prod-04': null }), desired)).toBe(true);
    expect(isRepaired(mark, runs({ 'prod-02': '1.0.0', 'prod-04': null }), desired)).toBe(false);
  });

  it('a stuck node that is gone (decommissioned, deregistered) no longer keeps the mark', () => {
    expect(isRepaired(mark, runs({ 'prod-02': '1.0.0', 'prod-04': undefined }), noDesired)).toBe(true);
    expect(isRepaired(mark, runs({ 'prod-02': '1.1.0', 'prod-04': undefined }), noDesired)).toBe(false);
  });
});

describe('sameStuckNodes: a retried rollback with the same stuck nodes writes nothing', () => {
  it('compares the node ids, in any order', () => {
    expect(sameStuckNodes(mark, { 'prod-04': mark.stuckNodes['prod-04'], 'prod-02': mark.stuckNodes['prod-02'] })).toBe(true);
    expect(sameStuckNodes(mark, { 'prod-02': mark.stuckNodes['prod-02'] })).toBe(false);
    expect(sameStuckNodes(mark, { ...mark.stuckNodes, 'prod-05': { previousVersion: '1.0.0', message: 'x' } })).toBe(false);
    expect(sameStuckNodes(undefined, mark.stuckNodes)).toBe(false);
  });
});

describe('degradedMessage', () => {
  it('says what is mixed and how to repair it', () => {
    const m = degradedMessage('demo-kernel', 'Production', mark);
    expect(m).toContain('demo-kernel in Production is Degraded since 2026-11-29T04:00:00.000Z');
    expect(m).toContain('the rollback of dep-1 could not finish on prod-02, prod-04');
    expect(m).toContain('still run demo-kernel@1.1.0');
    expect(m).toContain('POST /api/v1/deployments/dep-1/rollback');
    expect(m).toContain('converge to the desired state');
  });
});
