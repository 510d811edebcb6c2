/**
 * Approvals near their deadline (docs/adr/0029-cloudwatch-dashboards-and-alarms.md): what the
 * scheduled WatchApprovalDeadlines function counts among the Pending approval gates and publishes
 * as CloudWatch metrics (EMF), and what the CDK app's dashboard and alarms read. Plain logic, no AWS.
 */

import { CLOUDWATCH_METRICS } from './cloudwatchMetrics.ts';

/** The CloudWatch namespace and names of the approval metrics; infra/constructs/monitoring.ts alarms on the same. */
export const APPROVAL_METRICS = {
  namespace: CLOUDWATCH_METRICS.namespace,
  /** Powertools Metrics adds `service` as a default dimension; the alarms name it too. */
  service: CLOUDWATCH_METRICS.service,
  pending: 'ApprovalsPending',
  nearDeadline: 'ApprovalsNearDeadline',
  overdue: 'ApprovalsOverdue',
} as const;

/** How long before its deadline a Pending approval counts as near it, by default: 2 h of a default 24 h gate. */
export const DEFAULT_DEADLINE_WARNING_SECONDS = 7200;

export interface DeadlineCounts {
  /** Approval gates waiting for a decision. */
  pending: number;
  /** Pending, with the deadline still ahead but within the warning window. */
  nearDeadline: number;
  /**
   * Pending past the deadline: the gate's own timeout should have closed them (CloseGate marks them
   * Expired), so any here means a gate that did not close.
   */
  overdue: number;
  /** The earliest deadline among those still ahead (ISO), if any. */
  nextDeadline?: string;
}

/** Counts the Pending approvals by how close their deadline is at `now`; others are ignored. */
export function countDeadlines(
  approvals: readonly { status: string; deadline: string }[],
  now: Date,
  warningSeconds = DEFAULT_DEADLINE_WARNING_SECONDS,
): DeadlineCounts {
  if (!(warningSeconds > 0)) throw new Error(`the warning window must be a positive number of seconds, got ${warningSeconds}`);
  const counts: DeadlineCounts = { pending: 0, nearDeadline: 0, overdue: 0 };
  let next = Number.POSITIVE_INFINITY;
  for (const a of approvals) {
    if (a.status !== 'Pending') continue;
    counts.pending++;
    const deadline = Date.parse(a.deadline);
    // An unreadable deadline can never expire by itself: the gate is stuck, as an overdue one is.
    if (Number.isNaN(deadline) || deadline <= now.getTime()) {
      counts.overdue++;
      continue;
    }
    if (deadline - now.getTime() <= warningSeconds * 1000) counts.nearDeadline++;
    next = Math.min(next, deadline);
  }
  if (Number.isFinite(next)) counts.nextDeadline = new Date(next).toISOString();
  return counts;
}
