/**
 * Membership of enrolled hosts: signed heartbeats (the agent protocol's HMAC scheme, from the
 * agent to the orchestrator, with the node's own key) and decommissioning.
 */
import type { NodeAnomalyState } from '../domain/anomaly.ts';
import { anomalyAfterReport, notifyAnomalies } from './anomaly.ts';
import { verifyRequest, type AgentKey, type HealthReport } from '../agent/protocol.ts';
import { ENVIRONMENTS } from '../domain/environments.ts';
import { AppError, notFound, unauthorized } from '../domain/errors.ts';
import { nodeSigningKey, type NodeCredential } from '../domain/nodeCredentials.ts';
import { credentialOf, keyRole, type KeyRole } from '../domain/nodeKeyRotation.ts';
import { checkAgentAddress } from '../domain/ssrf.ts';
import { auditItem } from './audit.ts';
import { config } from './config.ts';
import { dropConnection } from './connections.ts';
import { isConditionFailure } from './deployments.ts';
import { checkWorkloadUrl, nodeSubject } from './enrolment.ts';
import { heartbeatKeyUpdate, transactNodeWrite, type HeartbeatKeyAnswer, type KeyUpdate, type TransactItem } from './nodeKeys.ts';
import { getNode, isDialOut, type NodeRecord } from './nodes.ts';
import { agentKeys } from './secrets.ts';
import { tableName } from './tables.ts';
import { logger } from './telemetry.ts';
import { routeNodeChange } from './trafficRouter.ts';
import { transactWrite } from './auditChain.ts';

/** A node by id in whichever environment holds it (node ids are unique across environments). */
export async function findNode(nodeId: string): Promise<NodeRecord | undefined> {
  const found = await Promise.all(ENVIRONMENTS.map((e) => getNode(e, nodeId)));
  return found.find((n) => n !== undefined);
}

export const heartbeatPath = (nodeId: string) => `/api/v1/nodes/${nodeId}/heartbeat`;

/**
 * The enrolled, not decommissioned node whose own key signed this request, and which of its keys
 * that was (current, pending, or previous within its overlap window; domain/nodeKeyRotation.ts);
 * 401 otherwise, with one message whatever the reason, so a caller learns nothing about which
 * nodes exist. The signed path is the route's, not the URL's, so a stage or base-path prefix in
 * front of the API does not matter.
 */
export async function authenticateNode(
  nodeId: string,
  rawBody: string,
  headers: Record<string, string | undefined>,
): Promise<{ node: NodeRecord & { credential: NodeCredential }; keys: AgentKey[]; role: KeyRole }> {
  const node = await findNode(nodeId);
  const keyId = headers['x-agent-key-id'];
  const role = node && typeof keyId === 'string' ? keyRole(node, keyId, Date.now()) : undefined;
  if (!node?.credential || !role) throw unauthorized('unknown node, unknown key, or revoked credentials');
  const keys = await agentKeys();
  const verdict = verifyRequest([nodeSigningKey(credentialOf(node, role)!, nodeId, keys)], 'POST', heartbeatPath(nodeId), rawBody, headers);
  if (!verdict.ok) throw unauthorized(`heartbeat refused: ${verdict.reason}`);
  return { node: node as NodeRecord & { credential: NodeCredential }, keys, role };
}

export interface Heartbeat {
  timestamp: number;
  heartbeatSeconds: number;
  address: string;
  /** The workload endpoint the agent advertises; undefined: unchanged. */
  workloadUrl?: string;
  report: Pick<HealthReport, 'status' | 'reasons' | 'at' | 'modules' | 'metrics'>;
}

/**
 * Record a heartbeat. Conditional, so a replayed (not newer) heartbeat or one racing a
 * decommission changes nothing. The node's keys move with it in the same transaction
 * (lib/nodeKeys.ts): a heartbeat signed with the pending key promotes it, a previous key past its
 * window is dropped, and keys wrapped under a fleet key that no longer signs are re-wrapped, so
 * agent-key rotation never strands a live node's key. The answer carries what the agent must know
 * about its keys.
 */
export async function recordHeartbeat(
  node: NodeRecord & { credential: NodeCredential },
  keys: AgentKey[],
  hb: Heartbeat,
  role: KeyRole = 'current',
): Promise<{ lastSeenAt: string } & HeartbeatKeyAnswer> {
  const now = Date.now();
  const lastSeenAt = new Date(now).toISOString();
  const moved = hb.address !== node.address;
  if (moved) {
    const guard = checkAgentAddress(hb.address, config.agentAllowedHosts());
    if (!guard.ok) throw new AppError('AddressRefused', `the advertised address is refused: ${guard.reason}`, 400);
  }
  const workloadMoved = hb.workloadUrl !== undefined && hb.workloadUrl !== node.workloadUrl;
  if (workloadMoved) await checkWorkloadUrl(hb.workloadUrl!, { nodeId: node.nodeId, address: isDialOut(node) ? undefined : hb.address });
  const keyUpdate = heartbeatKeyUpdate(node, keys, role, now, config.nodeKeyOverlapSeconds() * 1000);
  // The node's anomaly baseline moves with the report, in the same update (lib/anomaly.ts); the
  // heartbeat's ordering condition keeps two heartbeats from judging against one baseline.
  const anomaly = anomalyAfterReport(node, hb.report.metrics, new Date(now));
  const items = [
    heartbeatUpdate(node, hb, lastSeenAt, keyUpdate, anomaly.state),
    ...heartbeatAudit(node, hb, moved, workloadMoved),
    ...keyUpdate.audit,
    ...anomaly.audits.map((a) => ({ Put: a })),
  ];
  try {
    await transactNodeWrite(items);
  } catch (e) {
    if (isConditionFailure(e)) throw unauthorized('heartbeat refused: replayed, out of order, or the credentials were revoked or rotated meanwhile');
    throw e;
  }
  await notifyAnomalies(node.environment, node.nodeId, anomaly.transitions);
  if (workloadMoved) await routeNodeChange({ ...node, workloadUrl: hb.workloadUrl }, node, `node:${node.nodeId}`);
  return { lastSeenAt, ...keyUpdate.answer };
}

/** The node's new state, only if its keys are still the ones read, it is not decommissioned, and the heartbeat is newer. */
function heartbeatUpdate(node: NodeRecord, hb: Heartbeat, lastSeenAt: string, keyUpdate: KeyUpdate, anomaly: NodeAnomalyState): TransactItem {
  const sets = [
    'lastSeenAt = :seen',
    'lastHeartbeatTs = :ts',
    'lastHealth = :h',
    'lastMetrics = :m',
    'anomaly = :anomaly',
    'reportedModules = :mods',
    'enrolment.heartbeatSeconds = :hs',
    'address = :addr',
    ...(hb.workloadUrl !== undefined ? ['workloadUrl = :workload'] : []),
    ...keyUpdate.sets,
  ];
  const values: Record<string, unknown> = {
    ':seen': lastSeenAt,
    ':ts': hb.timestamp,
    ':h': { status: hb.report.status, reasons: hb.report.reasons, at: hb.report.at },
    ':m': hb.report.metrics,
    ':anomaly': anomaly,
    ':mods': hb.report.modules,
    ':hs': hb.heartbeatSeconds,
    ':addr': hb.address,
    ...(hb.workloadUrl !== undefined ? { ':workload': hb.workloadUrl } : {}),
    ...keyUpdate.values,
  };
  return {
    Update: {
      TableName: tableName('nodes'),
      Key: { environment: node.environment, nodeId: node.nodeId },
      UpdateExpression: `SET ${sets.join(', ')}${keyUpdate.removes.length ? ` REMOVE ${keyUpdate.removes.join(', ')}` : ''}`,
      ConditionExpression: [
        ...keyUpdate.conditions,
        'attribute_not_exists(decommissionedAt)',
        '(attribute_not_exists(lastHeartbeatTs) OR lastHeartbeatTs < :ts)',
      ].join(' AND '),
      ExpressionAttributeValues: values,
    },
  };
}

/** Audit events for what the heartbeat changed besides liveness and keys: the address, the workload endpoint. */
function heartbeatAudit(node: NodeRecord, hb: Heartbeat, moved: boolean, workloadMoved: boolean): TransactItem[] {
  const audit = (action: string, details: Record<string, unknown>): TransactItem => ({
    Put: auditItem({ subject: nodeSubject(node.nodeId), category: 'node', action, actor: `node:${node.nodeId}`, details }),
  });
  return [
    ...(moved ? [audit('node.address.changed', { from: node.address, to: hb.address })] : []),
    ...(workloadMoved ? [audit('node.workload.changed', { from: node.workloadUrl ?? null, to: hb.workloadUrl })] : []),
  ];
}

/**
 * Take a node out for good: all its keys are deleted (its heartbeats are refused at once) and
 * it is never listed for planning or called again. Idempotent.
 */
export async function decommissionNode(nodeId: string, actor: string, reason?: string): Promise<NodeRecord> {
  const node = await findNode(nodeId);
  if (!node) throw notFound(`node ${nodeId}`);
  if (node.decommissionedAt) return node;
  const at = new Date().toISOString();
  const subject = nodeSubject(nodeId);
  try {
    await transactWrite([
      {
        Update: {
          TableName: tableName('nodes'),
          Key: { environment: node.environment, nodeId },
          UpdateExpression: 'SET decommissionedAt = :at, decommissionedBy = :actor REMOVE credential, pendingCredential, previousCredential, #conn',
          ConditionExpression: 'attribute_exists(nodeId) AND attribute_not_exists(decommissionedAt)',
          ExpressionAttributeNames: { '#conn': 'connection' },
          ExpressionAttributeValues: { ':at': at, ':actor': actor },
        },
      },
      {
        Put: auditItem({
          subject,
          category: 'node',
          action: 'node.decommissioned',
          actor,
          details: { environment: node.environment, address: node.address, reason },
        }),
      },
      ...(node.credential
        ? [
            {
              Put: auditItem({
                subject,
                category: 'security',
                action: 'node.credentials.revoked',
                actor,
                details: { keyId: node.credential.keyId, pendingKeyId: node.pendingCredential?.keyId, previousKeyId: node.previousCredential?.keyId },
              }),
            },
          ]
        : []),
    ]);
  } catch (e) {
    if (!isConditionFailure(e)) throw e;
  }
  // A dial-out node's open connection is closed now, not when the agent next speaks; its
  // reconnects are refused (no credential). Its $disconnect then forgets the connection item.
  // If the management API fails, the connection stays open until API Gateway ends it, but it is
  // useless: nothing targets a decommissioned node, and its $disconnect changes nothing.
  if (node.connection)
    await dropConnection(node.connection.connectionId).catch((e: Error) =>
      logger.warn('could not close the connection of a decommissioned node', { nodeId, error: e.message }),
    );
  const gone = (await findNode(nodeId))!;
  // No request is routed to it any more.
  await routeNodeChange(gone, node, actor);
  return gone;
}
