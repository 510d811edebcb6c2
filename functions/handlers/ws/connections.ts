/**
 * The WebSocket API's routes (functions/catalog.ts WEBSOCKET): $connect records the connection the
 * authorizer allowed (a dial-out agent or an operator), $disconnect forgets it, $default takes what
 * agents send — replies to commands (recorded for the waiting caller, functions/lib/dialOut.ts)
 * and keepalive pings (answered with a pong through the route response) — and `subscribe` /
 * `unsubscribe` take operators' subscriptions to live events (docs/adr/0028-live-events.md), a
 * subscription with `after` replaying what the client missed. Thin: the data layer does the writing.
 */
import type { APIGatewayProxyResultV2 } from 'aws-lambda';
import { z } from 'zod';
import { agentMessageSchema, parseMessage } from '../../agent/wsProtocol.ts';
import { ENVIRONMENTS } from '../../domain/environments.ts';
import { AppError } from '../../domain/errors.ts';
import { parseClientMessage } from '../../domain/liveEvents.ts';
import { currentSessionRoles } from '../../domain/accessTokens.ts';
import {
  changeSubscription,
  closeConnection,
  dropConnection,
  MAX_SUBSCRIPTIONS_PER_CONNECTION,
  openAgentConnection,
  openOperatorConnection,
  postToConnection,
} from '../../lib/connections.ts';
import { lookupEntry } from '../../lib/directory.ts';
import { latestSeq, replay } from '../../lib/liveEvents.ts';
import { recordReply } from '../../lib/dialOut.ts';
import { logger } from '../../lib/telemetry.ts';

/** The parts of API Gateway's WebSocket event these routes read. */
export interface WebSocketEvent {
  requestContext: {
    routeKey: string;
    eventType: 'CONNECT' | 'MESSAGE' | 'DISCONNECT';
    connectionId: string;
    authorizer?: Record<string, unknown> | null;
    identity?: { sourceIp?: string };
    disconnectStatusCode?: number;
    disconnectReason?: string;
  };
  body?: string | null;
  isBase64Encoded?: boolean;
}

/** The authorizer's context for an agent (functions/handlers/ws/authorizer.ts), as API Gateway hands it on. */
const agentContext = z.object({
  kind: z.literal('agent'),
  nodeId: z.string().min(1),
  environment: z.enum(ENVIRONMENTS),
  keyId: z.string().min(1),
  timestamp: z.coerce.number().int(),
});

/** The authorizer's context for an operator. */
const operatorContext = z.object({
  kind: z.literal('operator'),
  userId: z.string().min(1),
  roles: z.string().transform((r) => r.split(',').filter(Boolean)),
});

const answer = (statusCode: number, body?: unknown): APIGatewayProxyResultV2 => ({
  statusCode,
  ...(body === undefined ? {} : { body: JSON.stringify(body) }),
});

async function connect(event: WebSocketEvent): Promise<APIGatewayProxyResultV2> {
  const operator = operatorContext.safeParse(event.requestContext.authorizer ?? {});
  if (operator.success) {
    await openOperatorConnection({
      connectionId: event.requestContext.connectionId,
      userId: operator.data.userId,
      roles: operator.data.roles,
      sourceIp: event.requestContext.identity?.sourceIp,
    });
    return answer(200);
  }
  const ctx = agentContext.safeParse(event.requestContext.authorizer ?? {});
  if (!ctx.success) return answer(403, { code: 'Forbidden', message: 'this WebSocket API accepts dial-out agents and operators only' });
  let replaced: string | undefined;
  try {
    ({ replaced } = await openAgentConnection({
      ...ctx.data,
      connectionId: event.requestContext.connectionId,
      sourceIp: event.requestContext.identity?.sourceIp,
    }));
  } catch (e) {
    if (e instanceof AppError && e.status === 401) {
      logger.info('WebSocket connect refused at $connect', { nodeId: ctx.data.nodeId, reason: e.message });
      return answer(401, { code: e.code, message: e.message });
    }
    throw e;
  }
  // One connection per node: the one it replaces (an agent that reconnected before its old
  // connection timed out, or a second process with the same credentials) is closed.
  if (replaced) await dropConnection(replaced).catch(() => undefined);
  return answer(200);
}

const bodyText = (event: WebSocketEvent) => (event.isBase64Encoded && event.body ? Buffer.from(event.body, 'base64').toString('utf8') : (event.body ?? ''));
const errorFrame = (code: string, message: string) => answer(200, { type: 'error', code, message });

/**
 * `subscribe` / `unsubscribe`: validated, the subscription added to (or removed from) the
 * connection, then — for `after` — every stored event after that seq the subscription matches and
 * the client's roles may read, posted in seq order before the acknowledgement. The subscription
 * is written before the replay is read, so an event numbered in between is in one or the other
 * (or both: clients drop a seq they already have).
 */
async function subscription(event: WebSocketEvent): Promise<APIGatewayProxyResultV2> {
  const operator = operatorContext.safeParse(event.requestContext.authorizer ?? {});
  if (!operator.success) return errorFrame('Forbidden', 'subscriptions are for operators (connect with ?token=<jwt>)');
  const parsed = parseClientMessage(bodyText(event));
  if (!parsed.ok) return errorFrame(parsed.code, parsed.message);
  const { connectionId } = event.requestContext;
  // The directory as it is now (as the REST API asks it): a session opened before its principal was
  // disabled gets nothing more, and replays only what the roles it holds now may read.
  const roles = currentSessionRoles(operator.data.roles, await lookupEntry(operator.data.userId));
  if (!roles) {
    await dropConnection(connectionId).catch(() => undefined);
    return errorFrame('Unauthorized', 'the principal is disabled or no longer in the directory');
  }
  const { action, after } = parsed.message;
  const conn = await changeSubscription(connectionId, action, parsed.subscription);
  if (conn === 'full')
    return errorFrame('TooManySubscriptions', `a connection holds at most ${MAX_SUBSCRIPTIONS_PER_CONNECTION} subscriptions: unsubscribe first`);
  if (!conn) return errorFrame('Gone', 'the connection is not known (closed or expired): reconnect');
  const base = { type: `${action}d`, subscription: parsed.subscription };
  if (action === 'unsubscribe' || after === undefined) return answer(200, { ...base, seq: await latestSeq() });
  const missed = await replay(after, parsed.subscription, roles);
  for (const e of missed.events) if ((await postToConnection(connectionId, JSON.stringify(e))) === 'gone') return answer(200, base);
  return answer(200, {
    ...base,
    replayed: missed.events.length,
    // Where the client is now: its last replayed event, else `after` — never past the newest event numbered.
    seq: missed.events.at(-1)?.seq ?? Math.min(after, await latestSeq()),
    ...(missed.truncated ? { truncated: true } : {}),
  });
}

async function message(event: WebSocketEvent): Promise<APIGatewayProxyResultV2> {
  const text = bodyText(event);
  if (event.requestContext.authorizer?.kind === 'operator') {
    // An operator's message with no known action: a keepalive ping is answered, anything else is an error frame.
    const ping = (() => {
      try {
        return (JSON.parse(text) as { type?: unknown })?.type === 'ping';
      } catch {
        return false;
      }
    })();
    if (ping) return answer(200, { type: 'pong' });
    return errorFrame('BadMessage', 'expected {"action":"subscribe"|"unsubscribe", "deploymentId"|"environment"|"all": …, "after"?: <seq>}');
  }
  const msg = parseMessage(agentMessageSchema, text);
  if (!msg) return answer(200, { type: 'error', code: 'BadMessage', message: 'expected {"type":"response",…} or {"type":"ping"}' });
  if (msg.type === 'ping') return answer(200, { type: 'pong' });
  const outcome = await recordReply(event.requestContext.connectionId, msg);
  if (outcome === 'refused') logger.warn('agent reply refused', { connectionId: event.requestContext.connectionId, requestId: msg.requestId });
  return answer(200);
}

export async function handler(event: WebSocketEvent): Promise<APIGatewayProxyResultV2> {
  const { routeKey, connectionId } = event.requestContext;
  if (routeKey === '$connect') return connect(event);
  if (routeKey === '$disconnect') {
    await closeConnection(connectionId, { statusCode: event.requestContext.disconnectStatusCode, reason: event.requestContext.disconnectReason });
    return answer(200);
  }
  if (routeKey === 'subscribe' || routeKey === 'unsubscribe') return subscription(event);
  return message(event);
}
