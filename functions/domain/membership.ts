/**
 * Node membership, pure parts: a node's status and which nodes a deployment may target.
 *
 * Enrolled hosts heartbeat; their status is computed from `lastSeenAt` when it is read (no
 * background job): Online while the last heartbeat is at most `missed` of the node's own
 * intervals old, Unreachable after. Nodes that never enrolled (the simulated fleet, hand-registered
 * hosts) send no heartbeat: they are managed by the fleet, count as Online here, and their
 * reachability is what the health polling and each deployment's own agent calls find, as before.
 */
export const NODE_STATUSES = ['Online', 'Unreachable', 'Decommissioned'] as const;
export type NodeStatus = (typeof NODE_STATUSES)[number];

export const UNREACHABLE_POLICIES = ['fail', 'skip'] as const;
export type UnreachablePolicy = (typeof UNREACHABLE_POLICIES)[number];

export interface MembershipView {
  nodeId: string;
  /** Present on enrolled hosts only. */
  enrolment?: { enrolledAt: string; heartbeatSeconds: number };
  lastSeenAt?: string;
  decommissionedAt?: string;
}

export function nodeStatus(n: MembershipView, now: number, missedHeartbeats: number): NodeStatus {
  if (n.decommissionedAt) return 'Decommissioned';
  if (!n.enrolment) return 'Online';
  // Enrolling counts as being seen: a node is not Unreachable before its first heartbeat is due.
  const last = Date.parse(n.lastSeenAt ?? n.enrolment.enrolledAt);
  return now - last <= n.enrolment.heartbeatSeconds * missedHeartbeats * 1000 ? 'Online' : 'Unreachable';
}

export type TargetSelection<N> = { ok: true; targets: N[]; skipped: string[] } | { ok: false; unreachable: string[] };

/**
 * The nodes a stage deploys to: decommissioned nodes never; unreachable ones fail the plan, or
 * are skipped (left unchanged) when the deployment asked for that.
 */
export function selectTargets<N extends MembershipView>(
  nodes: readonly N[],
  policy: UnreachablePolicy,
  now: number,
  missedHeartbeats: number,
): TargetSelection<N> {
  const live = nodes.filter((n) => nodeStatus(n, now, missedHeartbeats) !== 'Decommissioned');
  const unreachable = live
    .filter((n) => nodeStatus(n, now, missedHeartbeats) === 'Unreachable')
    .map((n) => n.nodeId)
    .sort();
  if (unreachable.length && policy === 'fail') return { ok: false, unreachable };
  return { ok: true, targets: live.filter((n) => !unreachable.includes(n.nodeId)), skipped: unreachable };
}

export function unreachableMessage(environment: string, nodeIds: readonly string[], missedHeartbeats: number): string {
  const list = nodeIds.length > 20 ? `${nodeIds.slice(0, 20).join(', ')} and ${nodeIds.length - 20} more` : nodeIds.join(', ');
  return (
    `${nodeIds.length} node${nodeIds.length === 1 ? '' : 's'} in ${environment} ${nodeIds.length === 1 ? 'is' : 'are'} unreachable ` +
    `(no heartbeat for ${missedHeartbeats} intervals): ${list}; request the deployment with "unreachableNodes": "skip" to leave them unchanged, or decommission them`
  );
}
