import { describe, expect, it } from 'vitest';
import { FUNCTIONS, type FunctionSpec } from '../../../functions/catalog.ts';
import { needsRewrap, type NodeCredential } from '../../../functions/domain/nodeCredentials.ts';
import {
  acceptedKeyIds,
  canStartRotation,
  heartbeatKeyPlan,
  keyRole,
  promoted,
  rotationDue,
  rotationState,
  type NodeKeys,
  type RetiredCredential,
} from '../../../functions/domain/nodeKeyRotation.ts';

const T0 = Date.parse('2026-03-01T00:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();
const cred = (keyId: string, extra: Partial<NodeCredential> = {}): NodeCredential => ({ keyId, wrapped: { wrapKeyId: 'k1', data: `data-${keyId}` }, ...extra });
const retired = (keyId: string, until: number): RetiredCredential => ({ ...cred(keyId), retiredAt: iso(until - 900_000), retiredUntil: iso(until) });
const node = (k: NodeKeys) => ({ nodeId: 'host-1', ...k });

describe('which keys a node accepts', () => {
  it('the current, the pending, and the previous one only within its window', () => {
    const k = { credential: cred('A'), pendingCredential: cred('B'), previousCredential: retired('Z', T0 + 1000) };
    expect(keyRole(k, 'A', T0)).toBe('current');
    expect(keyRole(k, 'B', T0)).toBe('pending');
    expect(keyRole(k, 'Z', T0)).toBe('previous');
    expect(keyRole(k, 'Z', T0 + 1000)).toBeUndefined();
    expect(keyRole(k, 'forged', T0)).toBeUndefined();
    expect(acceptedKeyIds(k, T0)).toEqual(['A', 'B', 'Z']);
    expect(acceptedKeyIds(k, T0 + 1000)).toEqual(['A', 'B']);
  });

  it('none once decommissioned or without a key (never enrolled)', () => {
    const k = { credential: cred('A'), previousCredential: retired('Z', T0 + 1000), decommissionedAt: iso(T0) };
    for (const id of ['A', 'Z']) expect(keyRole(k, id, T0)).toBeUndefined();
    expect(acceptedKeyIds(k, T0)).toEqual([]);
    expect(keyRole({}, 'A', T0)).toBeUndefined();
  });
});

describe('a heartbeat and the node keys', () => {
  it('signed with the current key: hands over the pending key', () => {
    const k = { credential: cred('A'), pendingCredential: cred('B') };
    expect(heartbeatKeyPlan(k, 'current', T0)).toEqual({ promote: false, deliver: 'pending', dropPrevious: false, acceptedAfter: ['A', 'B'] });
    expect(heartbeatKeyPlan({ credential: cred('A') }, 'current', T0)).toEqual({
      promote: false,
      deliver: undefined,
      dropPrevious: false,
      acceptedAfter: ['A'],
    });
  });

  it('signed with the pending key: promotes it, the current key becomes previous for the overlap', () => {
    const k = { credential: cred('A', { activeSince: iso(T0 - 5000) }), pendingCredential: cred('B', { issuedAt: iso(T0 - 2000), trigger: 'admin' as const }) };
    expect(heartbeatKeyPlan(k, 'pending', T0)).toEqual({ promote: true, dropPrevious: false, acceptedAfter: ['B', 'A'] });
    const after = promoted(k, T0, 900_000);
    expect(after.credential).toEqual({ ...k.pendingCredential, activeSince: iso(T0) });
    expect(after.previousCredential).toEqual({ ...k.credential, retiredAt: iso(T0), retiredUntil: iso(T0 + 900_000) });
    expect(acceptedKeyIds(after, T0 + 899_999)).toEqual(['B', 'A']);
    expect(acceptedKeyIds(after, T0 + 900_000)).toEqual(['B']);
    expect(() => promoted({ credential: cred('A') }, T0, 1)).toThrow(/no pending key/);
  });

  it('a promotion replaces a previous key that is still there (its window over)', () => {
    const k = { credential: cred('B'), pendingCredential: cred('C'), previousCredential: retired('A', T0 - 1) };
    expect(heartbeatKeyPlan(k, 'pending', T0)).toMatchObject({ promote: true, dropPrevious: true, acceptedAfter: ['C', 'B'] });
  });

  it('drops a previous key whose window is over, and keeps it until then', () => {
    const k = { credential: cred('B'), previousCredential: retired('A', T0 + 10) };
    expect(heartbeatKeyPlan(k, 'current', T0)).toMatchObject({ dropPrevious: false, acceptedAfter: ['B', 'A'] });
    expect(heartbeatKeyPlan(k, 'current', T0 + 10)).toMatchObject({ dropPrevious: true, acceptedAfter: ['B'] });
  });

  it('signed with the previous key (the agent lost the current one): hands the current key over first, even with one pending', () => {
    const k = { credential: cred('B'), pendingCredential: cred('C'), previousCredential: retired('A', T0 + 10) };
    expect(heartbeatKeyPlan(k, 'previous', T0)).toEqual({ promote: false, deliver: 'current', dropPrevious: false, acceptedAfter: ['B', 'C', 'A'] });
  });
});

describe('starting a rotation', () => {
  it('is allowed when idle, answered with the pending one when pending, and refused during the overlap', () => {
    expect(canStartRotation(node({ credential: cred('A') }), T0)).toEqual({ ok: true });
    const pending = canStartRotation(node({ credential: cred('A'), pendingCredential: cred('B', { issuedAt: iso(T0), trigger: 'admin' }) }), T0);
    expect(pending).toEqual({
      ok: false,
      code: 'RotationPending',
      state: { state: 'Pending', keyId: 'A', pendingKeyId: 'B', startedAt: iso(T0), trigger: 'admin' },
    });
    const overlap = canStartRotation(node({ credential: cred('B'), previousCredential: retired('A', T0 + 5000) }), T0);
    expect(overlap).toMatchObject({ ok: false, code: 'RotationInProgress', state: { state: 'Overlap', retiringKeyId: 'A', retiredUntil: iso(T0 + 5000) } });
    expect(canStartRotation(node({ credential: cred('B'), previousCredential: retired('A', T0) }), T0)).toEqual({ ok: true });
  });

  it('is refused for a decommissioned node and for a node that never enrolled', () => {
    expect(canStartRotation(node({ credential: cred('A'), decommissionedAt: iso(T0) }), T0)).toMatchObject({ ok: false, code: 'NodeDecommissioned' });
    expect(canStartRotation(node({}), T0)).toMatchObject({ ok: false, code: 'NotEnrolled', message: expect.stringContaining('fleet key set') });
  });

  it('shows where the key stands', () => {
    expect(rotationState({ credential: cred('A') }, T0)).toEqual({ state: 'Idle', keyId: 'A' });
    expect(rotationState({ credential: cred('B'), previousCredential: retired('A', T0 - 1) }, T0)).toEqual({ state: 'Idle', keyId: 'B' });
  });
});

describe('when the scheduled pass rotates a key', () => {
  const opts = { now: T0, maxAgeMs: 30 * 86_400_000, fleetSignerId: 'k1' };

  it('once it is older than the maximum age, counted from its promotion, else its issue, else the enrolment', () => {
    const young = cred('A', { issuedAt: iso(T0 - 40 * 86_400_000), activeSince: iso(T0 - 86_400_000), issuedUnder: 'k1' });
    expect(rotationDue(node({ credential: young }), opts)).toBeUndefined();
    const old = cred('A', { issuedAt: iso(T0 - 30 * 86_400_000), issuedUnder: 'k1' });
    expect(rotationDue(node({ credential: old }), opts)).toBe('max-age');
    expect(rotationDue(node({ credential: cred('A') }), { ...opts, enrolledAt: iso(T0 - 31 * 86_400_000) })).toBe('max-age');
    expect(rotationDue(node({ credential: cred('A') }), { ...opts, enrolledAt: iso(T0 - 86_400_000) })).toBeUndefined();
  });

  it('when the fleet key set signer changed since it was issued (and, on a fleet rotation, when that is unknown)', () => {
    const fresh = { activeSince: iso(T0) };
    expect(rotationDue(node({ credential: cred('A', { ...fresh, issuedUnder: 'k0' }) }), opts)).toBe('fleet-key-rotation');
    expect(rotationDue(node({ credential: cred('A', { ...fresh, issuedUnder: 'k1' }) }), { ...opts, fleetRotated: true })).toBeUndefined();
    expect(rotationDue(node({ credential: cred('A', fresh) }), opts)).toBeUndefined();
    expect(rotationDue(node({ credential: cred('A', fresh) }), { ...opts, fleetRotated: true })).toBe('fleet-key-rotation');
  });

  it('never while a rotation is under way, nor for decommissioned nodes', () => {
    const old = cred('A', { issuedUnder: 'k0', issuedAt: iso(0) });
    expect(rotationDue(node({ credential: old, pendingCredential: cred('B') }), opts)).toBeUndefined();
    expect(rotationDue(node({ credential: old, previousCredential: retired('Z', T0 + 1) }), opts)).toBeUndefined();
    expect(rotationDue(node({ credential: old, decommissionedAt: iso(T0) }), opts)).toBeUndefined();
  });
});

describe('re-wrapping under the fleet signer', () => {
  it('moves forward only: never back from a key the reader sees as next (a fresher reader wrapped it there)', () => {
    const keys = [
      { id: 'k1', secret: 's1' },
      { id: 'k0', secret: 's0' },
      { id: 'k2', secret: 's2', next: true },
    ];
    expect(needsRewrap({ wrapKeyId: 'k1', data: '' }, keys)).toBe(false);
    expect(needsRewrap({ wrapKeyId: 'k0', data: '' }, keys)).toBe(true);
    expect(needsRewrap({ wrapKeyId: 'k2', data: '' }, keys)).toBe(false);
  });
});

describe('the overlap window default', () => {
  it('outlasts every agent-calling task, which may sign with a node record read before a promotion', async () => {
    const longest = Math.max(
      ...Object.values(FUNCTIONS as Record<string, FunctionSpec>)
        .filter((f) => f.callsAgents)
        .map((f) => f.timeoutSeconds),
    );
    const { config } = await import('../../../functions/lib/config.ts');
    expect(config.nodeKeyOverlapSeconds()).toBeGreaterThanOrEqual(longest);
  });
});
