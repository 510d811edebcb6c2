/**
 * WebSocket connections (docs/adr/0010-websocket-layer.md): one item per open connection in the
 * Connections table, and for a dial-out agent the node's current connection on its node record,
 * written conditionally so a replayed connect, a decommissioned node or a stale disconnect changes
 * nothing. Posting to and closing connections goes through the API Gateway management API.
 */
import { DeleteConnectionCommand, GoneException, PostToConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';
import { GetCommand, TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { Environment } from '../domain/environments.ts';
import { unauthorized } from '../domain/errors.ts';
import { auditItem } from './audit.ts';
import { connectionsApi, dynamo } from './aws.ts';
import { isConditionFailure } from './deployments.ts';
import { nodeSubject } from './enrolment.ts';
import { getNode } from './nodes.ts';
import { tableName } from './tables.ts';
import { logger } from './telemetry.ts';

/** API Gateway closes every WebSocket connection after 2 hours; items outlive that a little, then expire. */
const CONNECTION_TTL_SECONDS = 2 * 3600 + 600;

/** Which kind of client a connection is. Operators' event subscriptions (issue 11) add their own kind. */
export type ConnectionKind = 'agent';

export interface ConnectionRecord {
  connectionId: string;
  kind: ConnectionKind;
  nodeId: string;
  environment: Environment;
  connectedAt: string;
  sourceIp?: string;
  expiresAt: number;
}

export async function getConnection(connectionId: string): Promise<ConnectionRecord | undefined> {
  const r = await dynamo().send(new GetCommand({ TableName: tableName('connections'), Key: { connectionId }, ConsistentRead: true }));
  return r.Item as ConnectionRecord | undefined;
}

export interface AgentConnect {
  connectionId: string;
  nodeId: string;
  environment: Environment;
  /** The node key the connect was signed with: still the issued one, or the connect is refused. */
  keyId: string;
  /** The agent's signed timestamp: newer than the last accepted connect, or it is a replay. */
  timestamp: number;
  sourceIp?: string;
}

/**
 * Record a dial-out agent's new connection as the node's current one. Refused (401) when the
 * connect is not newer than the last accepted one (a captured connect replayed), the node was
 * decommissioned or its key changed since the authorizer looked, or it is not a dial-out node.
 */
export async function openAgentConnection(c: AgentConnect): Promise<{ record: ConnectionRecord; replaced?: string }> {
  const before = await getNode(c.environment, c.nodeId);
  const now = new Date();
  const record: ConnectionRecord = {
    connectionId: c.connectionId,
    kind: 'agent',
    nodeId: c.nodeId,
    environment: c.environment,
    connectedAt: now.toISOString(),
    sourceIp: c.sourceIp,
    expiresAt: Math.floor(now.getTime() / 1000) + CONNECTION_TTL_SECONDS,
  };
  try {
    await dynamo().send(
      new TransactWriteCommand({
        TransactItems: [
          {
            Update: {
              TableName: tableName('nodes'),
              Key: { environment: c.environment, nodeId: c.nodeId },
              UpdateExpression: 'SET #conn = :conn, lastConnectTs = :ts',
              ConditionExpression:
                'credential.keyId = :keyId AND transport = :dialOut AND attribute_not_exists(decommissionedAt) AND (attribute_not_exists(lastConnectTs) OR lastConnectTs < :ts)',
              ExpressionAttributeNames: { '#conn': 'connection' },
              ExpressionAttributeValues: {
                ':conn': { connectionId: c.connectionId, connectedAt: record.connectedAt },
                ':ts': c.timestamp,
                ':keyId': c.keyId,
                ':dialOut': 'dial-out',
              },
            },
          },
          { Put: { TableName: tableName('connections'), Item: record, ConditionExpression: 'attribute_not_exists(connectionId)' } },
          {
            Put: auditItem({
              subject: nodeSubject(c.nodeId),
              category: 'node',
              action: 'node.connection.opened',
              actor: `node:${c.nodeId}`,
              details: { connectionId: c.connectionId, sourceIp: c.sourceIp, replaced: before?.connection?.connectionId },
            }),
          },
        ],
      }),
    );
  } catch (e) {
    if (isConditionFailure(e)) throw unauthorized('connect refused: replayed or out of order, or the credentials were revoked');
    throw e;
  }
  const replaced = before?.connection?.connectionId;
  return { record, replaced: replaced && replaced !== c.connectionId ? replaced : undefined };
}

/**
 * A connection closed: forget it, and if it was its node's current one, the node has none until
 * the agent reconnects (a newer connection is left alone). Idempotent.
 */
export async function closeConnection(connectionId: string, reason: { statusCode?: number; reason?: string }): Promise<ConnectionRecord | undefined> {
  const conn = await getConnection(connectionId);
  if (!conn) return undefined;
  try {
    await dynamo().send(
      new TransactWriteCommand({
        TransactItems: [
          { Delete: { TableName: tableName('connections'), Key: { connectionId }, ConditionExpression: 'attribute_exists(connectionId)' } },
          {
            Put: auditItem({
              subject: nodeSubject(conn.nodeId),
              category: 'node',
              action: 'node.connection.closed',
              actor: `node:${conn.nodeId}`,
              details: { connectionId, connectedAt: conn.connectedAt, ...reason },
            }),
          },
        ],
      }),
    );
  } catch (e) {
    if (!isConditionFailure(e)) throw e;
    return conn; // another $disconnect delivery got here first
  }
  try {
    await dynamo().send(
      new UpdateCommand({
        TableName: tableName('nodes'),
        Key: { environment: conn.environment, nodeId: conn.nodeId },
        UpdateExpression: 'REMOVE #conn',
        ConditionExpression: '#conn.connectionId = :id',
        ExpressionAttributeNames: { '#conn': 'connection' },
        ExpressionAttributeValues: { ':id': connectionId },
      }),
    );
  } catch (e) {
    if (!isConditionFailure(e)) throw e; // the node has a newer connection already, or is gone
  }
  return conn;
}

/** Send one message; `gone` when the connection no longer exists (the agent is reconnecting, or left). */
export async function postToConnection(connectionId: string, message: string): Promise<'sent' | 'gone'> {
  try {
    await connectionsApi().send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: Buffer.from(message) }));
    return 'sent';
  } catch (e) {
    if (e instanceof GoneException || (e as { name?: string }).name === 'GoneException') return 'gone';
    throw e;
  }
}

/** Close a connection from the server side (decommissioning, a replaced connection); gone already is fine. */
export async function dropConnection(connectionId: string): Promise<void> {
  try {
    await connectionsApi().send(new DeleteConnectionCommand({ ConnectionId: connectionId }));
  } catch (e) {
    if (e instanceof GoneException || (e as { name?: string }).name === 'GoneException') return;
    logger.warn('could not close a WebSocket connection', { connectionId, error: (e as Error).message });
    throw e;
  }
}
