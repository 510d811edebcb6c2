/**
 * The WebSocket API's $connect REQUEST authorizer (one layer for every kind of WebSocket client,
 * docs/adr/0010-websocket-layer.md). A dial-out agent names its node in `x-agent-node-id` and signs
 * `GET /ws/agent/<nodeId>` with the node's own key (the agent protocol's HMAC headers): allowed when
 * the node is enrolled, dial-out, not decommissioned, the signature verifies and the timestamp is
 * newer than the last accepted connect. The $connect route then records the connection under a
 * condition that repeats the replay check, so two racing copies of one connect cannot both succeed.
 * Operators watching live events (issue 11, docs/adr/0028-live-events.md) are the second kind:
 * `?token=<jwt>`, the very token the REST API takes, checked by the same code as the REST
 * authorizer (lib/auth.ts verifyBearer: signature, issuer, client, and the directory — a disabled
 * or unknown principal is refused, with the roles the directory holds now).
 */
import middy from '@middy/core';
import type { APIGatewayAuthorizerResult, APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import { verifyRequest } from '../../agent/protocol.ts';
import { agentConnectPath, NODE_ID_HEADER } from '../../agent/wsProtocol.ts';
import { nodeSigningKey } from '../../domain/nodeCredentials.ts';
import { credentialOf, keyRole } from '../../domain/nodeKeyRotation.ts';
import { recordDenial } from '../../lib/securityEvents.ts';
import { findNode } from '../../lib/membership.ts';
import { normalizeHeaders } from '../../lib/middleware/headers.ts';
import { isDialOut } from '../../lib/nodes.ts';
import { agentKeys } from '../../lib/secrets.ts';
import { verifyBearer } from '../../lib/auth.ts';
import { logger } from '../../lib/telemetry.ts';

const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** What the $connect route learns about the client (API Gateway passes it as requestContext.authorizer). */
export interface AgentConnectionContext {
  kind: 'agent';
  nodeId: string;
  environment: string;
  keyId: string;
  timestamp: number;
}

/** What the $connect route learns about an operator. */
export interface OperatorConnectionContext {
  kind: 'operator';
  userId: string;
  /** Comma-separated (API Gateway passes context values as strings). */
  roles: string;
}

async function authorizeOperator(event: APIGatewayRequestAuthorizerEvent, token: string): Promise<APIGatewayAuthorizerResult> {
  let principal: Awaited<ReturnType<typeof verifyBearer>>;
  try {
    principal = await verifyBearer(`Bearer ${token}`);
  } catch (e) {
    return refuse(`token rejected: ${(e as Error).message}`, event, undefined, 'auth.failed');
  }
  const context: OperatorConnectionContext = { kind: 'operator', userId: principal.userId, roles: principal.roles.join(',') };
  return {
    principalId: principal.userId,
    policyDocument: { Version: '2012-10-17', Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: event.methodArn }] },
    context: { ...context },
  };
}

async function authorize(event: APIGatewayRequestAuthorizerEvent): Promise<APIGatewayAuthorizerResult> {
  const headers = event.headers ?? {};
  const nodeId = headers[NODE_ID_HEADER];
  const token = event.queryStringParameters?.token;
  if (nodeId === undefined && token !== undefined) return authorizeOperator(event, token);
  if (nodeId === undefined)
    return refuse('no credentials: an operator connects with ?token=<jwt>, a dial-out agent signs its connect with the x-agent-* headers', event);
  // One message for every reason a node is refused, so a caller learns nothing about which nodes exist.
  const unknown = 'unknown node or revoked credentials';
  if (!NODE_ID.test(nodeId)) return refuse(unknown, event);
  const node = await findNode(nodeId);
  if (!node?.credential || node.decommissionedAt || !isDialOut(node)) return refuse(unknown, event, nodeId);
  // Any key the node may sign with now (current, pending, previous within its overlap), as for heartbeats.
  const keyId = headers['x-agent-key-id'];
  const role = typeof keyId === 'string' ? keyRole(node, keyId, Date.now()) : undefined;
  if (!role) return refuse(unknown, event, nodeId);
  const verdict = verifyRequest([nodeSigningKey(credentialOf(node, role)!, nodeId, await agentKeys())], 'GET', agentConnectPath(nodeId), '', headers);
  if (!verdict.ok) return refuse(`connect refused: ${verdict.reason}`, event, nodeId);
  const timestamp = Number(headers['x-agent-timestamp']);
  if (node.lastConnectTs !== undefined && timestamp <= node.lastConnectTs) return refuse('connect refused: replayed or out of order', event, nodeId);
  const context: AgentConnectionContext = { kind: 'agent', nodeId, environment: node.environment, keyId: verdict.keyId, timestamp };
  return {
    principalId: `node:${nodeId}`,
    policyDocument: { Version: '2012-10-17', Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: event.methodArn }] },
    context: { ...context },
  };
}

/**
 * Refused connects are security events, aggregated as refused REST calls are (one item per
 * address, kind and window, its count kept current: lib/securityEvents.ts), so a flood of
 * connects cannot fill the audit table. API Gateway answers `Unauthorized` with a 401.
 */
async function refuse(
  reason: string,
  event: APIGatewayRequestAuthorizerEvent,
  nodeId?: string,
  action: 'access.unauthenticated' | 'auth.failed' = 'access.unauthenticated',
): Promise<never> {
  const sourceIp = event.requestContext?.identity?.sourceIp;
  logger.info('WebSocket connect refused', { reason, nodeId, sourceIp });
  await recordDenial({ action, sourceIp, method: 'WEBSOCKET', path: '$connect', reason }).catch((err: Error) =>
    logger.warn('could not audit a refused connect', err),
  );
  throw new Error('Unauthorized');
}

export const handler = middy<APIGatewayRequestAuthorizerEvent, APIGatewayAuthorizerResult>(authorize).use(
  normalizeHeaders<APIGatewayRequestAuthorizerEvent>(
    (name, event) => refuse(`the ${name} header was sent more than once with different values`, event),
    new Set([NODE_ID_HEADER, 'x-agent-key-id', 'x-agent-timestamp', 'x-agent-signature']),
  ),
);
