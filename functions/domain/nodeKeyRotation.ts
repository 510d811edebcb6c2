/**
 * Rotating an enrolled node's own HMAC key without ever leaving the orchestrator and the agent
 * without a key in common (docs/adr/0012-node-key-rotation.md). Pure: which keys are accepted
 * when, what a heartbeat does to them, when a rotation may start and when one is due.
 *
 * A node record holds up to three keys:
 *   credential          the current key: the orchestrator signs its calls with it
 *   pendingCredential   issued, delivered in heartbeat answers, not yet proven by the agent
 *   previousCredential  the key before the current one, still honoured until `retiredUntil`
 *
 * A heartbeat signed with the pending key proves the agent stored it, and promotes it. The
 * previous key stays accepted (and the agent keeps it) for the overlap window, which must exceed
 * the longest time an orchestrator task may sign with a node record it read before the promotion.
 */
import type { NodeCredential } from './nodeCredentials.ts';

/** A key that was current until a promotion; accepted until `retiredUntil`. */
export interface RetiredCredential extends NodeCredential {
  retiredAt: string;
  retiredUntil: string;
}

export interface NodeKeys {
  credential?: NodeCredential;
  pendingCredential?: NodeCredential;
  previousCredential?: RetiredCredential;
  decommissionedAt?: string;
}

export type KeyRole = 'current' | 'pending' | 'previous';

/** What started a rotation (recorded with it and in its audit events). */
export const ROTATION_TRIGGERS = ['admin', 'max-age', 'fleet-key-rotation'] as const;
export type RotationTrigger = (typeof ROTATION_TRIGGERS)[number];

export const inOverlap = (p: RetiredCredential | undefined, now: number): p is RetiredCredential => p !== undefined && Date.parse(p.retiredUntil) > now;

/** The role of the key a request names, if the node accepts it now; decommissioned nodes accept none. */
export function keyRole(k: NodeKeys, keyId: string, now: number): KeyRole | undefined {
  if (k.decommissionedAt || !k.credential) return undefined;
  if (k.credential.keyId === keyId) return 'current';
  if (k.pendingCredential?.keyId === keyId) return 'pending';
  if (k.previousCredential?.keyId === keyId && inOverlap(k.previousCredential, now)) return 'previous';
  return undefined;
}

export function credentialOf(k: NodeKeys, role: KeyRole): NodeCredential | undefined {
  return role === 'current' ? k.credential : role === 'pending' ? k.pendingCredential : k.previousCredential;
}

/** Key ids the node may still be called or heartbeat with: an agent can drop every other key it holds. */
export function acceptedKeyIds(k: NodeKeys, now: number): string[] {
  if (k.decommissionedAt || !k.credential) return [];
  return [k.credential.keyId, k.pendingCredential?.keyId, inOverlap(k.previousCredential, now) ? k.previousCredential.keyId : undefined].filter(
    (id): id is string => id !== undefined,
  );
}

export type RotationState =
  | { state: 'Idle'; keyId: string }
  | { state: 'Pending'; keyId: string; pendingKeyId: string; startedAt?: string; trigger?: RotationTrigger }
  | { state: 'Overlap'; keyId: string; retiringKeyId: string; retiredUntil: string };

/**
 * Where the node's key stands. A rotation is under way from its start until the key it replaced
 * stops being accepted: another one may not start before (one previous key at a time, so a
 * record read before the last promotion always signs with a key the agent still holds).
 */
export function rotationState(k: NodeKeys & { credential: NodeCredential }, now: number): RotationState {
  if (k.pendingCredential)
    return {
      state: 'Pending',
      keyId: k.credential.keyId,
      pendingKeyId: k.pendingCredential.keyId,
      startedAt: k.pendingCredential.issuedAt,
      trigger: k.pendingCredential.trigger,
    };
  if (inOverlap(k.previousCredential, now))
    return { state: 'Overlap', keyId: k.credential.keyId, retiringKeyId: k.previousCredential.keyId, retiredUntil: k.previousCredential.retiredUntil };
  return { state: 'Idle', keyId: k.credential.keyId };
}

export type StartVerdict =
  | { ok: true }
  | { ok: false; code: 'NodeDecommissioned' | 'NotEnrolled'; message: string }
  | { ok: false; code: 'RotationPending'; state: Extract<RotationState, { state: 'Pending' }> }
  | { ok: false; code: 'RotationInProgress'; message: string; state: Extract<RotationState, { state: 'Overlap' }> };

export function canStartRotation(k: NodeKeys & { nodeId: string }, now: number): StartVerdict {
  if (k.decommissionedAt) return { ok: false, code: 'NodeDecommissioned', message: `node ${k.nodeId} is decommissioned: it has no key to rotate` };
  if (!k.credential)
    return {
      ok: false,
      code: 'NotEnrolled',
      message: `node ${k.nodeId} never enrolled: it uses the fleet key set (npm run rotate-keys), not a key of its own`,
    };
  const s = rotationState({ ...k, credential: k.credential }, now);
  if (s.state === 'Pending') return { ok: false, code: 'RotationPending', state: s };
  if (s.state === 'Overlap')
    return {
      ok: false,
      code: 'RotationInProgress',
      state: s,
      message: `node ${k.nodeId} finished a rotation recently; its previous key ${s.retiringKeyId} is honoured until ${s.retiredUntil}: rotate again after that`,
    };
  return { ok: true };
}

/** When the current key became current: its promotion, else its issue, else the enrolment. */
export const activeSince = (c: NodeCredential, fallback: string | undefined): number => Date.parse(c.activeSince ?? c.issuedAt ?? fallback ?? '') || 0;

/**
 * Whether the scheduled pass should start a rotation: the fleet key set's signer changed since the
 * key was issued (a fleet rotation renews every node key), or the key is older than `maxAgeMs`.
 * Never while one is under way. `fleetRotated` (the pass a fleet rotation runs) also renews keys
 * issued before their fleet signer was recorded.
 */
export function rotationDue(
  k: NodeKeys & { nodeId: string },
  opts: { now: number; maxAgeMs: number; fleetSignerId: string; fleetRotated?: boolean; enrolledAt?: string },
): RotationTrigger | undefined {
  if (!canStartRotation(k, opts.now).ok || !k.credential) return undefined;
  const issuedUnder = k.credential.issuedUnder;
  if (issuedUnder === undefined ? opts.fleetRotated : issuedUnder !== opts.fleetSignerId) return 'fleet-key-rotation';
  if (opts.now - activeSince(k.credential, opts.enrolledAt) >= opts.maxAgeMs) return 'max-age';
  return undefined;
}

export interface HeartbeatKeyPlan {
  /** The heartbeat was signed with the pending key: it becomes current, the current one previous. */
  promote: boolean;
  /** The key the answer hands the agent: the pending one, or the current one to an agent still signing with the previous. */
  deliver?: 'pending' | 'current';
  /** The previous key leaves the record: its window is over, or a promotion replaces it. */
  dropPrevious: boolean;
  /** The node's accepted key ids once the heartbeat is recorded. */
  acceptedAfter: string[];
}

export function heartbeatKeyPlan(k: NodeKeys & { credential: NodeCredential }, role: KeyRole, now: number): HeartbeatKeyPlan {
  if (role === 'pending') {
    const pending = k.pendingCredential!;
    return { promote: true, dropPrevious: k.previousCredential !== undefined, acceptedAfter: [pending.keyId, k.credential.keyId] };
  }
  const dropPrevious = k.previousCredential !== undefined && !inOverlap(k.previousCredential, now);
  // An agent signing with its previous key lost the current one (e.g. a restored data dir): it gets
  // the current key first, so that it can answer the orchestrator's calls again; a pending one next.
  const deliver = role === 'previous' ? 'current' : k.pendingCredential ? 'pending' : undefined;
  return { promote: false, deliver, dropPrevious, acceptedAfter: acceptedKeyIds(k, now) };
}

/** The keys after a promotion at `now`: pending → current, current → previous until now + overlap. */
export function promoted(
  k: NodeKeys & { credential: NodeCredential },
  now: number,
  overlapMs: number,
): Required<Pick<NodeKeys, 'credential' | 'previousCredential'>> {
  if (!k.pendingCredential) throw new Error('nothing to promote: no pending key');
  const at = new Date(now).toISOString();
  return {
    credential: { ...k.pendingCredential, activeSince: at },
    previousCredential: { ...k.credential, retiredAt: at, retiredUntil: new Date(now + overlapMs).toISOString() },
  };
}
