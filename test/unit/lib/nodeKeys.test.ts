/** The key part of a heartbeat's write (lib/nodeKeys.ts heartbeatKeyUpdate): expressions and answers, no DynamoDB. */
import { beforeAll, describe, expect, it } from 'vitest';
import { newNodeKey, unwrapSecret, wrapSecret, type NodeCredential } from '../../../functions/domain/nodeCredentials.ts';
import type { RetiredCredential } from '../../../functions/domain/nodeKeyRotation.ts';
import type { NodeRecord } from '../../../functions/lib/nodes.ts';

beforeAll(() => {
  process.env.AUDIT_TABLE = 'kmod-Audit';
});
const { heartbeatKeyUpdate } = await import('../../../functions/lib/nodeKeys.ts');

const T0 = Date.parse('2026-03-01T00:00:00Z');
const k1 = { id: 'k1', secret: 'fleet-one' };
const k2 = { id: 'k2', secret: 'fleet-two' };
const nodeKey = (under = k1) => {
  const key = newNodeKey();
  return { key, cred: { keyId: key.id, wrapped: wrapSecret(key.secret, 'host-1', under), issuedAt: new Date(T0).toISOString() } as NodeCredential };
};
const node = (k: Partial<NodeRecord>) =>
  ({ environment: 'QA', nodeId: 'host-1', address: 'http://10.0.0.1:7070', modules: {}, registeredAt: '', ...k }) as NodeRecord & {
    credential: NodeCredential;
  };
const actions = (items: unknown[]) => (items as { Put?: { Item: Record<string, unknown> } }[]).map((i) => i.Put?.Item.action);

describe('the key part of recording a heartbeat', () => {
  it('signed with the current key while a rotation is pending: conditions on both ids, hands the pending key over', () => {
    const [a, b] = [nodeKey(), nodeKey()];
    const u = heartbeatKeyUpdate(node({ credential: a.cred, pendingCredential: b.cred }), [k1], 'current', T0, 900_000);
    expect(u.conditions).toEqual(['credential.keyId = :kCurrent', 'pendingCredential.keyId = :kPending']);
    expect([u.sets, u.removes, u.audit]).toEqual([[], [], []]);
    expect(u.answer).toEqual({ credentials: { keyId: b.key.id, secret: b.key.secret }, acceptedKeyIds: [a.key.id, b.key.id] });
  });

  it('signed with the pending key: promotes in one write, never SET and REMOVE of the same key', () => {
    const [a, b, old] = [nodeKey(), nodeKey(), nodeKey()];
    const previous: RetiredCredential = { ...old.cred, retiredAt: '2026-02-01T00:00:00.000Z', retiredUntil: '2026-02-01T00:15:00.000Z' };
    const u = heartbeatKeyUpdate(node({ credential: a.cred, pendingCredential: b.cred, previousCredential: previous }), [k1], 'pending', T0, 900_000);
    expect(u.sets).toEqual(['credential = :kNewCurrent', 'previousCredential = :kNewPrevious']);
    expect(u.removes).toEqual(['pendingCredential']);
    expect(u.values[':kNewCurrent']).toMatchObject({ keyId: b.key.id, activeSince: new Date(T0).toISOString() });
    expect(u.values[':kNewPrevious']).toMatchObject({ keyId: a.key.id, retiredUntil: new Date(T0 + 900_000).toISOString() });
    expect(actions(u.audit)).toEqual(['node.credentials.retired', 'node.credentials.rotated']);
    expect(u.answer).toEqual({ acceptedKeyIds: [b.key.id, a.key.id] });
  });

  it('signed with the previous key: only within its window (a condition), and answered with the current key', () => {
    const [a, old] = [nodeKey(), nodeKey()];
    const previous: RetiredCredential = { ...old.cred, retiredAt: new Date(T0).toISOString(), retiredUntil: new Date(T0 + 60_000).toISOString() };
    const u = heartbeatKeyUpdate(node({ credential: a.cred, previousCredential: previous }), [k1], 'previous', T0 + 1000, 900_000);
    expect(u.conditions).toContain('previousCredential.retiredUntil > :kNow');
    expect(u.answer.credentials).toEqual({ keyId: a.key.id, secret: a.key.secret });
  });

  it('re-wraps every key under the fleet signer as whole keys (`wrapped` is a DynamoDB reserved word)', () => {
    const [a, b] = [nodeKey(k1), nodeKey(k1)];
    const u = heartbeatKeyUpdate(node({ credential: a.cred, pendingCredential: b.cred }), [k2, k1], 'current', T0, 900_000);
    expect(u.sets).toEqual(['credential = :kCurrentRewrapped', 'pendingCredential = :kPendingRewrapped']);
    expect(u.sets.join()).not.toContain('.wrapped');
    const rewrapped = u.values[':kCurrentRewrapped'] as NodeCredential;
    expect(rewrapped.wrapped.wrapKeyId).toBe('k2');
    expect(unwrapSecret(rewrapped.wrapped, 'host-1', [k2])).toBe(a.key.secret);
    expect(actions(u.audit)).toEqual(['node.credentials.rewrapped', 'node.credentials.rewrapped']);
    // A reader whose copy still marks k2 as next does not move a key back under k1.
    const stale = heartbeatKeyUpdate(
      node({ credential: { ...a.cred, wrapped: wrapSecret(a.key.secret, 'host-1', k2) } }),
      [k1, { ...k2, next: true }],
      'current',
      T0,
      1,
    );
    expect(stale.sets).toEqual([]);
  });
});
