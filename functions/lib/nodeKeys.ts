/**
 * Per-node key rotation, the data layer; the rules are domain/nodeKeyRotation.ts and the protocol
 * is docs/adr/0012-node-key-rotation.md. Here: starting a rotation (Admin, the scheduled pass, a
 * fleet key set rotation), the key part of a heartbeat (accept, deliver, promote, retire,
 * re-wrap), and the pass over every enrolled node. Every write is conditional on the keys it read
 * and carries its audit event in the same transaction, so retries and races change nothing twice.
 */
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import type { AgentKey } from '../agent/protocol.ts';
import { ENVIRONMENTS } from '../domain/environments.ts';
import { conflict } from '../domain/errors.ts';
import { needsRewrap, newNodeKey, nodeSigningKey, wrapSecret, type NodeCredential } from '../domain/nodeCredentials.ts';
import {
  canStartRotation,
  heartbeatKeyPlan,
  inOverlap,
  promoted,
  rotationDue,
  rotationState,
  type KeyRole,
  type RotationState,
  type RotationTrigger,
} from '../domain/nodeKeyRotation.ts';
import { mapLimit } from './agentClient.ts';
import { auditItem, type AuditEvent } from './audit.ts';
import { isConditionFailure } from './deployments.ts';
import { nodeSubject } from './enrolment.ts';
import { getNode, listNodes, type NodeRecord } from './nodes.ts';
import { tableName } from './tables.ts';
import { type TransactItem, transactWrite } from './auditChain.ts';

export type { TransactItem };
type FleetKeys = readonly (AgentKey & { next?: boolean })[];
type EnrolledNode = NodeRecord & { credential: NodeCredential };

/**
 * One transaction, retried a few times when DynamoDB cancels it for a concurrent write to the same
 * node (heartbeats, health polls and rotations touch one item); a failed condition is thrown.
 */
export async function transactNodeWrite(items: TransactItem[]): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await transactWrite(items);
      return;
    } catch (e) {
      const conflicting = e instanceof TransactionCanceledException && (e.CancellationReasons ?? []).some((r) => r.Code === 'TransactionConflict');
      if (!conflicting || isConditionFailure(e) || attempt >= 5) throw e;
      await new Promise((r) => setTimeout(r, 20 + Math.random() * 80 * (attempt + 1)));
    }
  }
}

const keyAudit = (nodeId: string, action: string, actor: string, details: Record<string, unknown>): TransactItem => ({
  Put: auditItem({ subject: nodeSubject(nodeId), category: 'security', action, actor, details } satisfies AuditEvent),
});

/** What the heartbeat answer tells the agent about its keys (functions/agent/membership.ts applies it). */
export interface HeartbeatKeyAnswer {
  /** A key to store (first) and sign the next heartbeats with. */
  credentials?: { keyId: string; secret: string };
  /** The keys the orchestrator still honours for this node; the agent may drop any other it holds. */
  acceptedKeyIds: string[];
}

export interface KeyUpdate {
  sets: string[];
  removes: string[];
  conditions: string[];
  values: Record<string, unknown>;
  audit: TransactItem[];
  answer: HeartbeatKeyAnswer;
}

/**
 * The key part of recording a heartbeat signed with the node's `role` key: conditions that the
 * keys are still the ones read, the promotion of a proven pending key, the removal of a previous
 * key whose window is over, re-wrapping under the fleet key set's signer, and the answer.
 */
export function heartbeatKeyUpdate(node: EnrolledNode, fleetKeys: FleetKeys, role: KeyRole, now: number, overlapMs: number): KeyUpdate {
  const plan = heartbeatKeyPlan(node, role, now);
  const { nodeId } = node;
  const u: KeyUpdate = {
    sets: [],
    removes: [],
    conditions: ['credential.keyId = :kCurrent'],
    values: { ':kCurrent': node.credential.keyId },
    audit: [],
    answer: { acceptedKeyIds: plan.acceptedAfter },
  };
  const rewrapped = (c: NodeCredential): NodeCredential => {
    if (!needsRewrap(c.wrapped, fleetKeys)) return c;
    u.audit.push(keyAudit(nodeId, 'node.credentials.rewrapped', 'system:heartbeat', { keyId: c.keyId, from: c.wrapped.wrapKeyId, to: fleetKeys[0].id }));
    return { ...c, wrapped: wrapSecret(nodeSigningKey(c, nodeId, fleetKeys).secret, nodeId, fleetKeys[0]) };
  };
  const { pendingCredential: pending, previousCredential: previous } = node;
  if (pending) {
    u.conditions.push('pendingCredential.keyId = :kPending');
    u.values[':kPending'] = pending.keyId;
  }
  if (previous) {
    u.conditions.push('previousCredential.keyId = :kPrevious');
    u.values[':kPrevious'] = previous.keyId;
  }
  if (role === 'previous') {
    u.conditions.push('previousCredential.retiredUntil > :kNow');
    u.values[':kNow'] = new Date(now).toISOString();
  }
  // A promotion overwrites the previous key; otherwise it is removed once its window is over.
  if (plan.dropPrevious && previous) {
    if (!plan.promote) u.removes.push('previousCredential');
    u.audit.push(keyAudit(nodeId, 'node.credentials.retired', 'system:heartbeat', { keyId: previous.keyId, retiredUntil: previous.retiredUntil }));
  }

  const current = rewrapped(node.credential);
  const next = pending && rewrapped(pending);
  if (plan.promote && next) {
    const keys = promoted({ credential: current, pendingCredential: next }, now, overlapMs);
    u.sets.push('credential = :kNewCurrent', 'previousCredential = :kNewPrevious');
    u.removes.push('pendingCredential');
    Object.assign(u.values, { ':kNewCurrent': keys.credential, ':kNewPrevious': keys.previousCredential });
    u.audit.push(
      keyAudit(nodeId, 'node.credentials.rotated', `node:${nodeId}`, {
        from: current.keyId,
        to: next.keyId,
        trigger: next.trigger,
        previousAcceptedUntil: keys.previousCredential.retiredUntil,
      }),
    );
    return u;
  }
  // Whole keys are written (under the conditions on their ids): `wrapped` is a DynamoDB reserved word.
  if (current !== node.credential) {
    u.sets.push('credential = :kCurrentRewrapped');
    u.values[':kCurrentRewrapped'] = current;
  }
  if (next && next !== pending) {
    u.sets.push('pendingCredential = :kPendingRewrapped');
    u.values[':kPendingRewrapped'] = next;
  }
  if (previous && !plan.dropPrevious) {
    const kept = rewrapped(previous);
    if (kept !== previous) {
      u.sets.push('previousCredential = :kPreviousRewrapped');
      u.values[':kPreviousRewrapped'] = kept;
    }
  }
  const delivered = plan.deliver === 'pending' ? pending : plan.deliver === 'current' ? node.credential : undefined;
  if (delivered) u.answer.credentials = { keyId: delivered.keyId, secret: nodeSigningKey(delivered, nodeId, fleetKeys).secret };
  return u;
}

/** A rotation's state as the Admin route shows it. */
export type RotationView = { nodeId: string; environment: string; started: boolean } & RotationState;

const view = (node: EnrolledNode, started: boolean, now: number): RotationView => ({
  nodeId: node.nodeId,
  environment: node.environment,
  started,
  ...rotationState(node, now),
});

/**
 * Issue a pending key for the node, unless a rotation is under way. Conditional on the keys read,
 * so concurrent starters (an Admin, the scheduled pass, a fleet rotation) issue one key, not two.
 * Returns `started: false` with the pending rotation when another one got there first.
 */
export async function startNodeKeyRotation(
  node: NodeRecord,
  opts: { actor: string; trigger: RotationTrigger; fleetKeys: FleetKeys; reason?: string; now?: number },
  attempt = 0,
): Promise<RotationView> {
  const now = opts.now ?? Date.now();
  const verdict = canStartRotation(node, now);
  if (!verdict.ok) {
    if (verdict.code === 'RotationPending') return view(node as EnrolledNode, false, now);
    throw conflict(verdict.code, verdict.message);
  }
  const current = node.credential!;
  const key = newNodeKey();
  const at = new Date(now).toISOString();
  const signer = opts.fleetKeys[0];
  const pending: NodeCredential = {
    keyId: key.id,
    wrapped: wrapSecret(key.secret, node.nodeId, signer),
    issuedAt: at,
    issuedUnder: signer.id,
    trigger: opts.trigger,
  };
  try {
    await transactNodeWrite([
      {
        Update: {
          TableName: tableName('nodes'),
          Key: { environment: node.environment, nodeId: node.nodeId },
          UpdateExpression: 'SET pendingCredential = :p',
          ConditionExpression:
            'credential.keyId = :cur AND attribute_not_exists(pendingCredential) AND attribute_not_exists(decommissionedAt) AND ' +
            '(attribute_not_exists(previousCredential) OR previousCredential.retiredUntil <= :now)',
          ExpressionAttributeValues: { ':p': pending, ':cur': current.keyId, ':now': at },
        },
      },
      keyAudit(node.nodeId, 'node.credentials.rotation-started', opts.actor, {
        keyId: current.keyId,
        pendingKeyId: key.id,
        trigger: opts.trigger,
        wrapKeyId: signer.id,
        ...(opts.reason ? { reason: opts.reason } : {}),
      }),
    ]);
  } catch (e) {
    if (!isConditionFailure(e)) throw e;
    // Someone changed the keys since they were read: answer from what is there now.
    const fresh = await getNode(node.environment, node.nodeId);
    if (!fresh || attempt >= 3) throw e;
    return startNodeKeyRotation(fresh, { ...opts, now: Date.now() }, attempt + 1);
  }
  return view({ ...node, credential: current, pendingCredential: pending }, true, now);
}

export interface PassSummary {
  nodes: number;
  started: Partial<Record<RotationTrigger, number>>;
  rewrapped: number;
  retired: number;
  /** Nodes the pass could not handle (their keys changed under it, or a write failed): the next pass looks again. */
  skipped: { nodeId: string; reason: string }[];
}

/**
 * Maintenance of one node's keys outside heartbeats: re-wrap every key not under the fleet
 * signer (so a node offline through fleet rotations never has its key wrapped under a retired
 * fleet key) and drop a previous key whose window is over. Returns the keys as written.
 */
async function maintain(node: EnrolledNode, fleetKeys: FleetKeys, now: number, actor: string, summary: PassSummary): Promise<EnrolledNode> {
  const sets: string[] = [];
  const removes: string[] = [];
  const values: Record<string, unknown> = { ':cur': node.credential.keyId };
  const conditions = ['credential.keyId = :cur', 'attribute_not_exists(decommissionedAt)'];
  const audit: TransactItem[] = [];
  const out: EnrolledNode = { ...node };
  const slots = [
    ['credential', node.credential],
    ['pendingCredential', node.pendingCredential],
    ['previousCredential', node.previousCredential],
  ] as const;
  for (const [slot, c] of slots) {
    if (!c) continue;
    if (slot !== 'credential') {
      conditions.push(`${slot}.keyId = :${slot}`);
      values[`:${slot}`] = c.keyId;
    }
    if (slot === 'previousCredential' && !inOverlap(node.previousCredential, now)) {
      removes.push(slot);
      out.previousCredential = undefined;
      audit.push(keyAudit(node.nodeId, 'node.credentials.retired', actor, { keyId: c.keyId, retiredUntil: node.previousCredential!.retiredUntil }));
      continue;
    }
    if (!needsRewrap(c.wrapped, fleetKeys)) continue;
    const rewrapped = { ...c, wrapped: wrapSecret(nodeSigningKey(c, node.nodeId, fleetKeys).secret, node.nodeId, fleetKeys[0]) };
    // The whole key, under the condition on its id: `wrapped` is a DynamoDB reserved word.
    sets.push(`${slot} = :${slot}Rewrapped`);
    values[`:${slot}Rewrapped`] = rewrapped;
    (out as unknown as Record<string, NodeCredential>)[slot] = rewrapped;
    audit.push(keyAudit(node.nodeId, 'node.credentials.rewrapped', actor, { keyId: c.keyId, from: c.wrapped.wrapKeyId, to: fleetKeys[0].id }));
  }
  if (!audit.length) return node;
  await transactNodeWrite([
    {
      Update: {
        TableName: tableName('nodes'),
        Key: { environment: node.environment, nodeId: node.nodeId },
        UpdateExpression: [sets.length ? `SET ${sets.join(', ')}` : '', removes.length ? `REMOVE ${removes.join(', ')}` : ''].join(' ').trim(),
        ConditionExpression: conditions.join(' AND '),
        ExpressionAttributeValues: values,
      },
    },
    ...audit,
  ]);
  summary.rewrapped += sets.length;
  summary.retired += removes.length;
  return out;
}

/**
 * The scheduled pass (and what a fleet key set rotation runs): for every enrolled node, keep its
 * keys wrapped under the fleet signer, retire a previous key whose window is over, and start a
 * rotation when one is due (the key is older than `maxAgeMs`, or the fleet signer changed since it
 * was issued; `fleetRotated` also renews keys issued before that was recorded). Idempotent.
 */
export async function nodeKeyPass(opts: {
  fleetKeys: FleetKeys;
  maxAgeMs: number;
  actor: string;
  fleetRotated?: boolean;
  now?: number;
  concurrency?: number;
}): Promise<PassSummary> {
  const summary: PassSummary = { nodes: 0, started: {}, rewrapped: 0, retired: 0, skipped: [] };
  for (const environment of ENVIRONMENTS) {
    const nodes = (await listNodes(environment)).filter((n): n is EnrolledNode => n.credential !== undefined);
    summary.nodes += nodes.length;
    const results = await mapLimit(nodes, opts.concurrency ?? 8, async (n) => {
      const now = opts.now ?? Date.now();
      const node = await maintain(n, opts.fleetKeys, now, opts.actor, summary);
      const due = rotationDue(node, {
        now,
        maxAgeMs: opts.maxAgeMs,
        fleetSignerId: opts.fleetKeys[0].id,
        fleetRotated: opts.fleetRotated,
        enrolledAt: node.enrolment?.enrolledAt ?? node.registeredAt,
      });
      if (!due) return;
      const r = await startNodeKeyRotation(node, { actor: opts.actor, trigger: due, fleetKeys: opts.fleetKeys, now });
      if (r.started) summary.started[due] = (summary.started[due] ?? 0) + 1;
    });
    results.forEach((r, i) => {
      if (r.status === 'rejected') summary.skipped.push({ nodeId: nodes[i].nodeId, reason: (r.reason as Error).message });
    });
  }
  return summary;
}
