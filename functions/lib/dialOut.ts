/**
 * Orchestrator side of the dial-out transport (functions/agent/wsProtocol.ts). A command for a
 * dial-out node is recorded in AgentRequests (requestId → the node it is for), posted to the
 * node's current connection, and its reply — which the WebSocket $default route writes into the
 * same item, only if it came over a connection of that node — is polled with consistent reads.
 * While waiting, the node's connection is re-read: when it changed (the agent reconnected after a
 * drop), the command is posted again on the new one; the agent's idempotency per deployment id
 * makes the replay harmless. Why polling DynamoDB and what it costs: docs/adr/0010-websocket-layer.md.
 */
import { randomUUID } from 'node:crypto';
import { GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { MAX_MESSAGE_BYTES, type AgentCommand, type AgentReply } from '../agent/wsProtocol.ts';
import type { Environment } from '../domain/environments.ts';
import { audit } from './audit.ts';
import { dynamo } from './aws.ts';
import { postToConnection, getConnection } from './connections.ts';
import { isConditionFailure } from './deployments.ts';
import { nodeSubject } from './enrolment.ts';
import { getNode } from './nodes.ts';
import { tableName } from './tables.ts';

/**
 * A reply as stored: the body as the agent's JSON text, not a DynamoDB map (which would reorder
 * keys, cap nesting at 32 levels and refuse some values).
 */
export interface StoredReply {
  status: number;
  json: string;
}

/** How long a request item is kept after it was sent (for the record; nothing reads it after the call). */
const REQUEST_TTL_SECONDS = 3600;

export interface ExchangeDeps {
  /** The node's current connection id, if it has one. */
  connectionOf(): Promise<string | undefined>;
  /** Post the command on a connection (signed afresh each time). */
  post(connectionId: string): Promise<'sent' | 'gone'>;
  /** The reply, once the $default route has recorded it. */
  reply(): Promise<Pick<AgentReply, 'status' | 'body'> | undefined>;
  sleep(ms: number): Promise<void>;
  now(): number;
}

export interface ExchangeSettings {
  timeoutMs: number;
  /** First wait between reply polls; doubles up to 4× this. */
  pollMs: number;
  /** How often the node's connection is re-read while waiting (a reconnect gets the command again). */
  recheckMs: number;
}

export type ExchangeOutcome =
  | { ok: true; reply: Pick<AgentReply, 'status' | 'body'>; posts: number }
  | { ok: false; reason: 'not-connected' | 'no-reply'; posts: number };

/**
 * Deliver one command and wait for its reply until the timeout, following the node's connection:
 * no connection yet (or only a gone one) → wait for one; a new connection → post again there.
 */
export async function exchange(deps: ExchangeDeps, s: ExchangeSettings): Promise<ExchangeOutcome> {
  const deadline = deps.now() + s.timeoutMs;
  let postedOn: string | undefined;
  let gone: string | undefined;
  let checkedAt = Number.NEGATIVE_INFINITY;
  let wait = s.pollMs;
  let posts = 0;
  for (;;) {
    if (postedOn === undefined || deps.now() - checkedAt >= s.recheckMs) {
      const current = await deps.connectionOf();
      checkedAt = deps.now();
      if (current === undefined || current === gone) postedOn = undefined;
      else if (current !== postedOn) {
        if ((await deps.post(current)) === 'sent') {
          postedOn = current;
          posts++;
          wait = s.pollMs;
        } else {
          gone = current; // its $disconnect has not been recorded yet: wait for the reconnect
          postedOn = undefined;
        }
      }
    }
    if (posts > 0) {
      const reply = await deps.reply();
      if (reply) return { ok: true, reply, posts };
    }
    const left = deadline - deps.now();
    if (left <= 0) return { ok: false, reason: posts > 0 ? 'no-reply' : 'not-connected', posts };
    await deps.sleep(Math.min(wait, left));
    wait = Math.min(wait * 2, s.pollMs * 4);
  }
}

export interface DialOutCall {
  nodeId: string;
  environment: Environment;
  method: AgentCommand['method'];
  path: string;
  body: string;
  /** The x-agent-* signature headers, made afresh for each post (a long wait must not outlive the clock window). */
  sign: () => Record<string, string>;
  /** The connection the caller's copy of the node record names (tried first; the record is re-read after). */
  connectionHint?: string;
}

/**
 * Send a command to a dial-out node and wait for its reply (the DynamoDB- and API-Gateway-backed
 * exchange). The common path costs one PutItem, one PostToConnection and a few GetItems: the
 * request item is written with the first post (never for a node that was not connected), and the
 * connection the caller's node record names is tried before the record is read again.
 */
export async function callOverConnection(call: DialOutCall, s: ExchangeSettings): Promise<ExchangeOutcome & { requestId: string }> {
  const requestId = randomUUID();
  const requests = tableName('agentRequests');
  const message = () => {
    const cmd: AgentCommand = { type: 'request', requestId, method: call.method, path: call.path, headers: call.sign(), body: call.body };
    return JSON.stringify(cmd);
  };
  if (Buffer.byteLength(message()) > MAX_MESSAGE_BYTES) throw new Error(`the command for ${call.nodeId} exceeds the ${MAX_MESSAGE_BYTES}-byte message limit`);
  const countPost = (connectionId: string, delta: 1 | -1) =>
    dynamo().send(
      new UpdateCommand({
        TableName: requests,
        Key: { requestId },
        UpdateExpression: 'SET posts = posts + :d, lastPostedOn = :c',
        ExpressionAttributeValues: { ':d': delta, ':c': connectionId },
      }),
    );
  let hint = call.connectionHint;
  let recorded = false;
  const outcome = await exchange(
    {
      connectionOf: async () => {
        const h = hint;
        hint = undefined;
        return h ?? (await getNode(call.environment, call.nodeId))?.connection?.connectionId;
      },
      post: async (connectionId) => {
        if (recorded) {
          const sent = await postToConnection(connectionId, message());
          if (sent === 'sent') await countPost(connectionId, 1);
          return sent;
        }
        // Written before the post: the reply may arrive (and is recorded only into an existing item) at once.
        await dynamo().send(
          new PutCommand({
            TableName: requests,
            Item: {
              requestId,
              nodeId: call.nodeId,
              environment: call.environment,
              method: call.method,
              path: call.path,
              createdAt: new Date().toISOString(),
              posts: 1,
              lastPostedOn: connectionId,
              expiresAt: Math.floor(Date.now() / 1000) + REQUEST_TTL_SECONDS,
            },
            ConditionExpression: 'attribute_not_exists(requestId)',
          }),
        );
        recorded = true;
        const sent = await postToConnection(connectionId, message());
        if (sent === 'gone') await countPost(connectionId, -1);
        return sent;
      },
      reply: async () => {
        const r = await dynamo().send(new GetCommand({ TableName: requests, Key: { requestId }, ConsistentRead: true, ProjectionExpression: 'reply' }));
        const reply = r.Item?.reply as StoredReply | undefined;
        return reply && { status: reply.status, body: JSON.parse(reply.json) as unknown };
      },
      sleep: (ms) => new Promise((res) => setTimeout(res, ms)),
      now: () => Date.now(),
    },
    s,
  );
  return { ...outcome, requestId };
}

/**
 * A reply arrived on a connection: record it on its request, only if the request was for the node
 * that connection belongs to (a node cannot answer for another) and not answered yet (a replayed
 * command's second answer changes nothing). A reply refused for another node is a security event.
 */
export async function recordReply(connectionId: string, reply: AgentReply): Promise<'recorded' | 'duplicate' | 'refused'> {
  const conn = await getConnection(connectionId);
  if (conn?.kind !== 'agent') return refuse(connectionId, reply, undefined, 'the connection is not an agent connection');
  try {
    await dynamo().send(
      new UpdateCommand({
        TableName: tableName('agentRequests'),
        Key: { requestId: reply.requestId },
        UpdateExpression: 'SET reply = :r, repliedAt = :at, repliedOn = :c',
        ConditionExpression: 'attribute_exists(requestId) AND nodeId = :node AND attribute_not_exists(reply)',
        ExpressionAttributeValues: {
          ':r': { status: reply.status, json: JSON.stringify(reply.body ?? null) } satisfies StoredReply,
          ':at': new Date().toISOString(),
          ':c': connectionId,
          ':node': conn.nodeId,
        },
      }),
    );
    return 'recorded';
  } catch (e) {
    if (!isConditionFailure(e)) throw e;
  }
  const r = await dynamo().send(new GetCommand({ TableName: tableName('agentRequests'), Key: { requestId: reply.requestId }, ConsistentRead: true }));
  if (r.Item && r.Item.nodeId === conn.nodeId) return 'duplicate';
  return refuse(connectionId, reply, conn.nodeId, r.Item ? `the request was for another node` : 'no such request');
}

async function refuse(connectionId: string, reply: AgentReply, nodeId: string | undefined, reason: string): Promise<'refused'> {
  await audit({
    subject: nodeId ? nodeSubject(nodeId) : `connection#${connectionId}`,
    category: 'security',
    action: 'agent.reply.refused',
    actor: nodeId ? `node:${nodeId}` : `connection:${connectionId}`,
    details: { connectionId, requestId: reply.requestId, reason },
  });
  return 'refused';
}
