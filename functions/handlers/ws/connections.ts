/**
 * The WebSocket API's routes (functions/catalog.ts WEBSOCKET): $connect records the connection the
 * authorizer allowed, $disconnect forgets it, $default takes what agents send — replies to
 * commands (recorded for the waiting caller, functions/lib/dialOut.ts) and keepalive pings
 * (answered with a pong through the route response). Thin: the data layer does the writing.
 */
import type { APIGatewayProxyResultV2 } from 'aws-lambda';
import { z } from 'zod';
import { agentMessageSchema, parseMessage } from '../../agent/wsProtocol.ts';
import { ENVIRONMENTS } from '../../domain/environments.ts';
import { AppError } from '../../domain/errors.ts';
import { closeConnection, dropConnection, openAgentConnection } from '../../lib/connections.ts';
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

const answer = (statusCode: number, body?: unknown): APIGatewayProxyResultV2 => ({
  statusCode,
  ...(body === undefined ? {} : { body: JSON.stringify(body) }),
});

async function connect(event: WebSocketEvent): Promise<APIGatewayProxyResultV2> {
  const ctx = agentContext.safeParse(event.requestContext.authorizer ?? {});
  if (!ctx.success) return answer(403, { code: 'Forbidden', message: 'this WebSocket API accepts dial-out agents only' });
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

async function message(event: WebSocketEvent): Promise<APIGatewayProxyResultV2> {
  const text = event.isBase64Encoded && event.body ? Buffer.from(event.body, 'base64').toString('utf8') : (event.body ?? '');
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
  return message(event);
}
