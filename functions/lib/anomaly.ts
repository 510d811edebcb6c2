/**
 * Anomaly flags on nodes, stored with the report that produced them (domain/anomaly.ts decides):
 * the baseline and flags live on the node record as `anomaly` and are written in the same update
 * that records the node's health and metrics, so a report costs no extra table call. Only a report
 * that raises or clears a flag adds audit items (in the same transaction) and notifies the
 * environment's subscribers (its approvers, on the approver topic) through SNS.
 */
import type { MetricsReport } from '../agent/protocol.ts';
import { type AnomalyTransition, describeTransition, type NodeAnomalyState, observe } from '../domain/anomaly.ts';
import type { Environment } from '../domain/environments.ts';
import { auditItem } from './audit.ts';
import { anomalySettings, config } from './config.ts';
import { nodeSubject } from './enrolment.ts';
import { publishToApprover } from './notify.ts';

/** The node's anomaly state after a report, and the audit items for its transitions. */
export function anomalyAfterReport(
  node: { environment: Environment; nodeId: string; anomaly?: NodeAnomalyState },
  metrics: MetricsReport,
  now = new Date(),
): { state: NodeAnomalyState; transitions: AnomalyTransition[]; audits: ReturnType<typeof auditItem>[] } {
  // The orchestrator's clock, not the agent's: `since` and the optimistic condition on `updatedAt` stay ours.
  const at = now.toISOString();
  const { state, transitions } = observe(
    node.anomaly,
    { latencyMs: metrics.latencyMs, errorRatePercent: metrics.errorRatePercent, cpuPercent: metrics.cpuPercent, memoryPercent: metrics.memoryPercent },
    at,
    anomalySettings(),
  );
  const audits = transitions.map((t) =>
    auditItem({
      subject: nodeSubject(node.nodeId),
      category: 'node',
      action: t.kind === 'raised' ? 'node.anomaly.raised' : 'node.anomaly.cleared',
      actor: 'system:anomaly',
      details: { environment: node.environment, nodeId: node.nodeId, ...t.flag, message: describeTransition(node.environment, node.nodeId, t) },
    }),
  );
  return { state, transitions, audits };
}

/**
 * Tell the environment's subscribers about flags raised or cleared (after the write that recorded
 * them). A failed publish is logged and does not undo the flag: it is recorded and audited, and
 * shown in the cluster view either way.
 */
export async function notifyAnomalies(environment: Environment, nodeId: string, transitions: AnomalyTransition[]): Promise<void> {
  if (!transitions.length) return;
  const approvers = config.approvers(environment);
  const raised = transitions.filter((t) => t.kind === 'raised').map((t) => t.metric);
  const subject = raised.length
    ? `[kmod] Anomaly on ${environment}/${nodeId}: ${raised.join(', ')}`
    : `[kmod] Anomaly cleared on ${environment}/${nodeId}: ${transitions.map((t) => t.metric).join(', ')}`;
  const body = [
    ...transitions.map((t) => `${t.kind === 'raised' ? 'RAISED' : 'CLEARED'} ${describeTransition(environment, nodeId, t)}`),
    '',
    `Cluster view: GET /api/v1/clusters/${environment}`,
  ].join('\n');
  await Promise.all(
    approvers.map((a) =>
      publishToApprover(a, environment, subject, body).catch((e: unknown) =>
        console.error(JSON.stringify({ level: 'error', msg: 'anomaly notification failed', environment, nodeId, approver: a, error: String(e) })),
      ),
    ),
  );
}
