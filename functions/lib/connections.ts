/**
 * WebSocket connections (docs/adr/0010-websocket-layer.md): one item per open connection in the
 * Connections table, and for a dial-out agent the node's current connection on its node record,
 * written conditionally so a replayed connect, a decommissioned node or a stale disconnect changes
 * nothing. Posting to and closing connections goes through the API Gateway management API.
 */
import { DeleteConnectionCommand, GoneException, PostToConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';
import { GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { Environment } from '../domain/environments.ts';
import { unauthorized } from '../domain/errors.ts';
import { auditItem } from './audit.ts';
import { connectionsApi, dynamo } from './aws.ts';
import { isConditionFailure } from './deployments.ts';
import { nodeSubject } from './enrolment.ts';
import { getNode } from './nodes.ts';
import { tableName } from './tables.ts';
import { logger } from './telemetry.ts';
import { transactWrite } from './auditChain.ts';

/** API Gateway closes every WebSocket connection after 2 hours; items outlive that a little, then expire. */
const CONNECTION_TTL_SECONDS = 2 * 3600 + 600;

/** Which kind of client a connection is: a dial-out agent, or an operator watching live events (docs/adr/0028-live-events.md). */
export type ConnectionKind = 'agent' | 'operator';

export interface AgentConnectionRecord {
  connectionId: string;
  kind: 'agent';
  nodeId: string;
  environment: Environment;
  connectedAt: string;
  sourceIp?: string;
  expiresAt: number;
}

/** An operator's connection: who, with the roles the directory gave at connect, and what they subscribed to. */
export interface OperatorConnectionRecord {
  connectionId: string;
  kind: 'operator';
  userId: string;
  roles: string[];
  /** Subscription keys (domain/liveEvents.ts subscriptionKey); a string set, absent when empty. */
  subscriptions?: Set<string>;
  connectedAt: string;
  sourceIp?: string;
  expiresAt: number;
}

export type ConnectionRecord = AgentConnectionRecord | OperatorConnectionRecord;

export async function getConnection(connectionId: string): Promise<ConnectionRecord | undefined> {
  const r = await dynamo().send(new GetCommand({ TableName: tableName('connections'), Key: { connectionId }, ConsistentRead: true }));
  return r.Item as ConnectionRecord | undefined;
}

/**
 * An operator's connection is the subject of its own audit events (the user is their actor): one
 * hash chain per connection, so a user opening many connections at once does not contend for one
 * chain head (200 at once did, and $connect failed: docs/adr/0032-tamper-evident-audit.md).
 */
export const operatorConnectionSubject = (connectionId: string) => `connection#${connectionId}`;

/** Record an operator's connection (the authorizer has verified the token against the directory); audited. */
export async function openOperatorConnection(c: {
  connectionId: string;
  userId: string;
  roles: string[];
  sourceIp?: string;
}): Promise<OperatorConnectionRecord> {
  const now = new Date();
  const record: OperatorConnectionRecord = {
    connectionId: c.connectionId,
    kind: 'operator',
    userId: c.userId,
    roles: c.roles,
    connectedAt: now.toISOString(),
    sourceIp: c.sourceIp,
    expiresAt: Math.floor(now.getTime() / 1000) + CONNECTION_TTL_SECONDS,
  };
  await transactWrite([
    { Put: { TableName: tableName('connections'), Item: record, ConditionExpression: 'attribute_not_exists(connectionId)' } },
    {
      Put: auditItem({
        subject: operatorConnectionSubject(c.connectionId),
        category: 'security',
        action: 'events.connection.opened',
        actor: c.userId,
        details: { connectionId: c.connectionId, sourceIp: c.sourceIp, roles: c.roles },
      }),
    },
  ]);
  return record;
}

/**
 * Subscriptions one operator connection may hold: each is read by the fan-out for every batch of
 * events, and the connection item must stay far below DynamoDB's 400 KB item limit.
 */
export const MAX_SUBSCRIPTIONS_PER_CONNECTION = 100;

/** Add or remove one subscription: the record after it, 'full' at the limit, undefined for an unknown connection. */
export async function changeSubscription(
  connectionId: string,
  action: 'subscribe' | 'unsubscribe',
  key: string,
): Promise<OperatorConnectionRecord | 'full' | undefined> {
  const adding = action === 'subscribe';
  try {
    const r = await dynamo().send(
      new UpdateCommand({
        TableName: tableName('connections'),
        Key: { connectionId },
        UpdateExpression: `${adding ? 'ADD' : 'DELETE'} subscriptions :k`,
        // Adding: room left, or the key already there (a repeated subscribe changes nothing).
        ConditionExpression: adding
          ? 'kind = :operator AND (attribute_not_exists(subscriptions) OR size(subscriptions) < :max OR contains(subscriptions, :key))'
          : 'kind = :operator',
        ExpressionAttributeValues: {
          ':k': new Set([key]),
          ':operator': 'operator',
          ...(adding ? { ':max': MAX_SUBSCRIPTIONS_PER_CONNECTION, ':key': key } : {}),
        },
        ReturnValues: 'ALL_NEW',
      }),
    );
    return r.Attributes as OperatorConnectionRecord;
  } catch (e) {
    if (!isConditionFailure(e)) throw e;
    if (!adding) return undefined;
    // Which condition failed: an unknown connection, or one at the limit.
    const conn = await getConnection(connectionId);
    return conn?.kind === 'operator' ? 'full' : undefined;
  }
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
    await transactWrite([
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
    ]);
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
  const subject = conn.kind === 'agent' ? nodeSubject(conn.nodeId) : operatorConnectionSubject(connectionId);
  try {
    await transactWrite([
      { Delete: { TableName: tableName('connections'), Key: { connectionId }, ConditionExpression: 'attribute_exists(connectionId)' } },
      {
        Put: auditItem(
          conn.kind === 'agent'
            ? {
                subject,
                category: 'node',
                action: 'node.connection.closed',
                actor: `node:${conn.nodeId}`,
                details: { connectionId, connectedAt: conn.connectedAt, ...reason },
              }
            : {
                subject,
                category: 'security',
                action: 'events.connection.closed',
                actor: conn.userId,
                details: { connectionId, connectedAt: conn.connectedAt, ...reason },
              },
        ),
      },
    ]);
  } catch (e) {
    if (!isConditionFailure(e)) throw e;
    return conn; // another $disconnect delivery got here first
  }
  if (conn.kind !== 'agent') return conn;
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
