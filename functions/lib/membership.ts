/**
 * Membership of enrolled hosts: signed heartbeats (the agent protocol's HMAC scheme, from the
 * agent to the orchestrator, with the node's own key) and decommissioning.
 */
import { TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { verifyRequest, type AgentKey, type HealthReport } from '../agent/protocol.ts';
import { ENVIRONMENTS } from '../domain/environments.ts';
import { AppError, notFound, unauthorized } from '../domain/errors.ts';
import { nodeSigningKey, wrapSecret } from '../domain/nodeCredentials.ts';
import { checkAgentAddress } from '../domain/ssrf.ts';
import { auditItem } from './audit.ts';
import { dynamo } from './aws.ts';
import { config } from './config.ts';
import { dropConnection } from './connections.ts';
import { isConditionFailure } from './deployments.ts';
import { nodeSubject } from './enrolment.ts';
import { getNode, type NodeRecord } from './nodes.ts';
import { agentKeys } from './secrets.ts';
import { tableName } from './tables.ts';
import { logger } from './telemetry.ts';

/** A node by id in whichever environment holds it (node ids are unique across environments). */
export async function findNode(nodeId: string): Promise<NodeRecord | undefined> {
  const found = await Promise.all(ENVIRONMENTS.map((e) => getNode(e, nodeId)));
  return found.find((n) => n !== undefined);
}

export const heartbeatPath = (nodeId: string) => `/api/v1/nodes/${nodeId}/heartbeat`;

/**
 * The enrolled, not decommissioned node whose own key signed this request; 401 otherwise, with one
 * message whatever the reason, so a caller learns nothing about which nodes exist. The signed path
 * is the route's, not the URL's, so a stage or base-path prefix in front of the API does not matter.
 */
export async function authenticateNode(
  nodeId: string,
  rawBody: string,
  headers: Record<string, string | undefined>,
): Promise<{ node: NodeRecord; keys: AgentKey[] }> {
  const node = await findNode(nodeId);
  if (!node?.credential || node.decommissionedAt) throw unauthorized('unknown node or revoked credentials');
  const keys = await agentKeys();
  const verdict = verifyRequest([nodeSigningKey(node.credential, nodeId, keys)], 'POST', heartbeatPath(nodeId), rawBody, headers);
  if (!verdict.ok) throw unauthorized(`heartbeat refused: ${verdict.reason}`);
  return { node, keys };
}

export interface Heartbeat {
  timestamp: number;
  heartbeatSeconds: number;
  address: string;
  report: Pick<HealthReport, 'status' | 'reasons' | 'at' | 'modules' | 'metrics'>;
}

/**
 * Record a heartbeat. Conditional, so a replayed (not newer) heartbeat or one racing a
 * decommission changes nothing. A credential wrapped under a key that no longer signs is
 * re-wrapped under the current one, so agent-key rotation never strands a live node's key.
 */
export async function recordHeartbeat(node: NodeRecord, keys: AgentKey[], hb: Heartbeat): Promise<{ lastSeenAt: string }> {
  const lastSeenAt = new Date().toISOString();
  const moved = hb.address !== node.address;
  if (moved) {
    const guard = checkAgentAddress(hb.address, config.agentAllowedHosts());
    if (!guard.ok) throw new AppError('AddressRefused', `the advertised address is refused: ${guard.reason}`, 400);
  }
  const rewrap = node.credential!.wrapped.wrapKeyId !== keys[0].id;
  const items = [heartbeatUpdate(node, keys, hb, lastSeenAt, rewrap), ...heartbeatAudit(node, keys, hb, moved, rewrap)];
  try {
    await dynamo().send(new TransactWriteCommand({ TransactItems: items }));
  } catch (e) {
    if (isConditionFailure(e)) throw unauthorized('heartbeat refused: replayed, out of order, or the credentials were revoked');
    throw e;
  }
  return { lastSeenAt };
}

type TransactItem = NonNullable<ConstructorParameters<typeof TransactWriteCommand>[0]['TransactItems']>[number];

/** The node's new state, only if its key is still the one issued, it is not decommissioned, and the heartbeat is newer. */
function heartbeatUpdate(node: NodeRecord, keys: AgentKey[], hb: Heartbeat, lastSeenAt: string, rewrap: boolean): TransactItem {
  const sets = [
    'lastSeenAt = :seen',
    'lastHeartbeatTs = :ts',
    'lastHealth = :h',
    'lastMetrics = :m',
    'reportedModules = :mods',
    'enrolment.heartbeatSeconds = :hs',
    'address = :addr',
  ];
  const values: Record<string, unknown> = {
    ':seen': lastSeenAt,
    ':ts': hb.timestamp,
    ':h': { status: hb.report.status, reasons: hb.report.reasons, at: hb.report.at },
    ':m': hb.report.metrics,
    ':mods': hb.report.modules,
    ':hs': hb.heartbeatSeconds,
    ':addr': hb.address,
    ':keyId': node.credential!.keyId,
  };
  if (rewrap) {
    sets.push('credential.wrapped = :w');
    values[':w'] = wrapSecret(nodeSigningKey(node.credential!, node.nodeId, keys).secret, node.nodeId, keys[0]);
  }
  return {
    Update: {
      TableName: tableName('nodes'),
      Key: { environment: node.environment, nodeId: node.nodeId },
      UpdateExpression: `SET ${sets.join(', ')}`,
      ConditionExpression:
        'credential.keyId = :keyId AND attribute_not_exists(decommissionedAt) AND (attribute_not_exists(lastHeartbeatTs) OR lastHeartbeatTs < :ts)',
      ExpressionAttributeValues: values,
    },
  };
}

/** Audit events for what the heartbeat changed besides liveness: the address, the key wrapping. */
function heartbeatAudit(node: NodeRecord, keys: AgentKey[], hb: Heartbeat, moved: boolean, rewrap: boolean): TransactItem[] {
  const subject = nodeSubject(node.nodeId);
  const items: TransactItem[] = [];
  if (moved) {
    const details = { from: node.address, to: hb.address };
    items.push({ Put: auditItem({ subject, category: 'node', action: 'node.address.changed', actor: `node:${node.nodeId}`, details }) });
  }
  if (rewrap) {
    const details = { keyId: node.credential!.keyId, from: node.credential!.wrapped.wrapKeyId, to: keys[0].id };
    items.push({ Put: auditItem({ subject, category: 'security', action: 'node.credentials.rewrapped', actor: 'system:heartbeat', details }) });
  }
  return items;
}

/**
 * Take a node out for good: its credentials are deleted (its heartbeats are refused at once) and
 * it is never listed for planning or called again. Idempotent.
 */
export async function decommissionNode(nodeId: string, actor: string, reason?: string): Promise<NodeRecord> {
  const node = await findNode(nodeId);
  if (!node) throw notFound(`node ${nodeId}`);
  if (node.decommissionedAt) return node;
  const at = new Date().toISOString();
  const subject = nodeSubject(nodeId);
  try {
    await dynamo().send(
      new TransactWriteCommand({
        TransactItems: [
          {
            Update: {
              TableName: tableName('nodes'),
              Key: { environment: node.environment, nodeId },
              UpdateExpression: 'SET decommissionedAt = :at, decommissionedBy = :actor REMOVE credential, #conn',
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
            ? [{ Put: auditItem({ subject, category: 'security', action: 'node.credentials.revoked', actor, details: { keyId: node.credential.keyId } }) }]
            : []),
        ],
      }),
    );
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
  return (await findNode(nodeId))!;
}
