/**
 * API Gateway's WebSocket API, locally, on the API port at `/<stage>` (`/ws`): an upgrade runs the
 * catalog's $connect authorizer and $connect route through the local Lambda runner with the
 * events API Gateway sends (requestContext.routeKey, eventType, connectionId, domainName, stage…),
 * messages go to the route their `action` names or to $default (a route response is sent back),
 * and a closed socket runs $disconnect. The management API the SDK calls
 * (`POST|GET|DELETE /<stage>/@connections/{connectionId}`) is served beside it, so the Lambda code
 * uses @aws-sdk/client-apigatewaymanagementapi unchanged. Like LocalStack, requests signed with
 * SigV4 are accepted without checking the signature (any local credentials do).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { APIGatewayAuthorizerResult } from 'aws-lambda';
import { WebSocket, WebSocketServer } from 'ws';
import { MAX_MESSAGE_BYTES } from '../functions/agent/wsProtocol.ts';
import { FUNCTIONS, WEBSOCKET, type FunctionId, type FunctionSpec, type WebSocketRouteSpec } from '../functions/catalog.ts';
import { ControlBodyTooLarge, readControlBody } from './controlBody.ts';
import { ACCOUNT, functionName, REGION, type LocalLambda } from './lambda.ts';

const WS_API_ID = 'localws001';
/**
 * API Gateway closes every WebSocket connection after 2 hours; clients reconnect. Emulated, since
 * the connection records expire by TTL soon after (functions/lib/connections.ts) and the local
 * cloud's TTL sweep deletes them as DynamoDB does (localcloud/ttlSweep.ts).
 */
const MAX_CONNECTION_MS = (Number(process.env.KMOD_WS_MAX_CONNECTION_SECONDS) > 0 ? Number(process.env.KMOD_WS_MAX_CONNECTION_SECONDS) : 7200) * 1000;

/**
 * One connection's messages run this many at a time; the rest wait in order, and past
 * MAX_MESSAGES_QUEUED waiting the socket is no longer read until the queue halves (TCP
 * backpressure on the client). API Gateway spreads a client's messages over many Lambda
 * instances; here they all share one process, and one client sending 3000 subscribe frames at once
 * started 3000 invocations together: the cloud grew to 1.9 GB and stopped answering /health for 34 s.
 */
export const MAX_MESSAGES_IN_FLIGHT = 4;
const MAX_MESSAGES_QUEUED = 64;

interface OpenConnection {
  socket: WebSocket;
  connectedAt: Date;
  lastActiveAt: Date;
  sourceIp: string;
  userAgent: string;
  /** What the authorizer said about the client (nodeId for an agent), plus principalId. */
  authorizer: Record<string, unknown> | null;
}

/** Connection ids look like API Gateway's (base64-ish, URL-safe here so they need no escaping). */
const newConnectionId = () => randomBytes(12).toString('base64url');

function reject(socket: Duplex, status: number, message: string): void {
  const body = JSON.stringify({ message });
  if (socket.writable)
    socket.end(
      `HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : status === 403 ? 'Forbidden' : 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  else socket.destroy();
}

export class LocalWebSocketApi {
  readonly path = `/${WEBSOCKET.stage}`;
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });
  private readonly open = new Map<string, OpenConnection>();
  private readonly routes = new Map<string, WebSocketRouteSpec>(WEBSOCKET.routes.map((r) => [r.routeKey, r]));
  private readonly authorizerFn: FunctionId | undefined = (Object.entries(FUNCTIONS) as [FunctionId, FunctionSpec][]).find(
    ([, s]) => s.authorizesConnections,
  )?.[0];
  /** Test faults: connections of these principals (node ids) are dropped right after the next message is delivered to them. */
  readonly dropAfterDelivery = new Set<string>();

  constructor(
    private readonly lambda: LocalLambda,
    private readonly domainName: () => string,
  ) {}

  get connections(): { connectionId: string; connectedAt: string; authorizer: Record<string, unknown> | null }[] {
    return [...this.open].map(([connectionId, c]) => ({ connectionId, connectedAt: c.connectedAt.toISOString(), authorizer: c.authorizer }));
  }

  private context(
    connectionId: string,
    routeKey: string,
    eventType: 'CONNECT' | 'MESSAGE' | 'DISCONNECT',
    c: Pick<OpenConnection, 'connectedAt' | 'sourceIp' | 'userAgent'>,
  ) {
    const now = new Date();
    return {
      routeKey,
      eventType,
      extendedRequestId: randomUUID(),
      requestTime: now.toUTCString(),
      messageDirection: 'IN',
      stage: WEBSOCKET.stage,
      connectedAt: c.connectedAt.getTime(),
      requestTimeEpoch: now.getTime(),
      identity: { sourceIp: c.sourceIp, userAgent: c.userAgent },
      requestId: randomUUID(),
      domainName: this.domainName(),
      connectionId,
      apiId: WS_API_ID,
    };
  }

  /** An HTTP upgrade on the API port: authorise, run $connect, then accept (or answer the refusal). */
  async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    // Until `ws` takes the socket, nothing else listens for its errors: a client resetting while the
    // authorizer runs would otherwise be an unhandled 'error' that ends the whole process.
    socket.on('error', () => socket.destroy());
    const url = new URL(req.url ?? '/', 'http://api.local');
    if (url.pathname !== this.path) return reject(socket, 404, `no WebSocket API at ${url.pathname}`);
    const connectionId = newConnectionId();
    const headers: Record<string, string> = Object.create(null);
    const multiValueHeaders: Record<string, string[]> = Object.create(null);
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      headers[req.rawHeaders[i]] = req.rawHeaders[i + 1];
      (multiValueHeaders[req.rawHeaders[i]] ??= []).push(req.rawHeaders[i + 1]);
    }
    const query: Record<string, string> = Object.fromEntries(url.searchParams);
    const multiQuery: Record<string, string[]> = {};
    for (const [k, v] of url.searchParams) (multiQuery[k] ??= []).push(v);
    const conn = {
      connectedAt: new Date(),
      sourceIp: req.socket.remoteAddress?.replace(/^::ffff:/, '') ?? '127.0.0.1',
      userAgent: String(req.headers['user-agent'] ?? ''),
    };
    const requestContext = this.context(connectionId, '$connect', 'CONNECT', conn);
    const params = {
      headers,
      multiValueHeaders,
      queryStringParameters: Object.keys(query).length ? query : undefined,
      multiValueQueryStringParameters: Object.keys(multiQuery).length ? multiQuery : undefined,
    };
    const route = this.routes.get('$connect');
    let authorizer: Record<string, unknown> | null = null;
    if (route?.authorized) {
      if (!this.authorizerFn) return reject(socket, 500, 'no authorizer declared');
      let result: APIGatewayAuthorizerResult;
      try {
        result = (await this.lambda.invoke(functionName(this.authorizerFn), {
          type: 'REQUEST',
          methodArn: `arn:aws:execute-api:${REGION}:${ACCOUNT}:${WS_API_ID}/${WEBSOCKET.stage}/$connect`,
          ...params,
          stageVariables: {},
          requestContext,
        })) as APIGatewayAuthorizerResult;
      } catch (e) {
        return (e as Error).message.includes('"errorMessage":"Unauthorized"') ? reject(socket, 401, 'Unauthorized') : reject(socket, 500, 'authorizer failure');
      }
      if (!result.policyDocument.Statement.some((s) => 'Effect' in s && s.Effect === 'Allow')) return reject(socket, 403, 'Forbidden');
      authorizer = { ...(result.context ?? {}), principalId: result.principalId, integrationLatency: 0 };
    }
    if (route) {
      let result: { statusCode?: number } | null;
      try {
        result = (await this.lambda.invoke(functionName(route.fn), {
          ...params,
          requestContext: { ...requestContext, authorizer },
          isBase64Encoded: false,
        })) as {
          statusCode?: number;
        } | null;
      } catch {
        return reject(socket, 500, 'Internal server error');
      }
      const status = result?.statusCode ?? 200;
      if (status < 200 || status >= 300) return reject(socket, status, 'the connection was refused');
    }
    if (socket.destroyed) {
      // The client went away while $connect ran: API Gateway still tells the routes it is gone.
      void this.disconnected(connectionId, { ...conn, authorizer }, 1006, 'client gone before the upgrade');
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const c: OpenConnection = { socket: ws, ...conn, lastActiveAt: new Date(), authorizer };
      this.open.set(connectionId, c);
      const limit = setTimeout(() => ws.close(1001, 'Going away'), MAX_CONNECTION_MS).unref();
      const queue: { data: Buffer; isBinary: boolean }[] = [];
      let inFlight = 0;
      const next = () => {
        while (inFlight < MAX_MESSAGES_IN_FLIGHT && queue.length && ws.readyState === WebSocket.OPEN) {
          const m = queue.shift()!;
          inFlight++;
          void this.message(connectionId, c, m.data, m.isBinary).finally(() => {
            inFlight--;
            next();
          });
        }
        if (ws.isPaused && queue.length <= MAX_MESSAGES_QUEUED / 2) ws.resume();
      };
      ws.on('message', (data, isBinary) => {
        c.lastActiveAt = new Date();
        queue.push({ data: data as Buffer, isBinary });
        if (queue.length >= MAX_MESSAGES_QUEUED) ws.pause();
        next();
      });
      ws.on('close', (code, reason) => {
        queue.length = 0;
        clearTimeout(limit);
        this.open.delete(connectionId);
        void this.disconnected(connectionId, c, code, reason.toString());
      });
      ws.on('error', () => ws.terminate());
    });
  }

  /** A message: the route its `action` names (API Gateway's route selection), else $default. */
  private async message(connectionId: string, c: OpenConnection, data: Buffer, isBinary: boolean): Promise<void> {
    const text = data.toString('utf8');
    let action: unknown;
    try {
      action = isBinary ? undefined : (JSON.parse(text) as { action?: unknown })?.action;
    } catch {
      /* not JSON: $default */
    }
    // $connect and $disconnect are never chosen by a message (on API Gateway they only run on connect and close).
    const route = (typeof action === 'string' && !action.startsWith('$') && this.routes.get(action)) || this.routes.get('$default');
    if (!route) return;
    const event = {
      requestContext: {
        ...this.context(connectionId, route.routeKey, 'MESSAGE', c),
        messageId: randomBytes(6).toString('base64url'),
        authorizer: c.authorizer,
      },
      body: isBinary ? data.toString('base64') : text,
      isBase64Encoded: isBinary,
    };
    try {
      const result = (await this.lambda.invoke(functionName(route.fn), event)) as { body?: string } | null;
      if (route.returnResponse && result?.body && c.socket.readyState === WebSocket.OPEN) c.socket.send(result.body);
    } catch {
      if (c.socket.readyState === WebSocket.OPEN)
        c.socket.send(JSON.stringify({ message: 'Internal server error', connectionId, requestId: event.requestContext.requestId }));
    }
  }

  private async disconnected(
    connectionId: string,
    c: Pick<OpenConnection, 'connectedAt' | 'sourceIp' | 'userAgent' | 'authorizer'>,
    code: number,
    reason: string,
  ) {
    const route = this.routes.get('$disconnect');
    if (!route) return;
    const requestContext = {
      ...this.context(connectionId, '$disconnect', 'DISCONNECT', c),
      disconnectStatusCode: code,
      disconnectReason: reason,
      authorizer: c.authorizer,
    };
    await this.lambda.invoke(functionName(route.fn), { headers: {}, multiValueHeaders: {}, requestContext, isBase64Encoded: false }).catch(() => undefined);
  }

  /** The management API: `/<stage>/@connections/{connectionId}`, as the SDK calls it. */
  async manage(req: IncomingMessage, res: ServerResponse, connectionId: string): Promise<void> {
    const error = (status: number, type: string, message: string) => {
      res.writeHead(status, { 'content-type': 'application/json', 'x-amzn-errortype': type });
      res.end(JSON.stringify({ message }));
    };
    if (!String(req.headers.authorization ?? '').startsWith('AWS4-HMAC-SHA256 ')) return error(403, 'ForbiddenException', 'Missing Authentication Token');
    let body: Buffer;
    try {
      body = await readControlBody(req, MAX_MESSAGE_BYTES);
    } catch (e) {
      if (e instanceof ControlBodyTooLarge) return error(413, 'PayloadTooLargeException', 'Message too long');
      throw e;
    }
    const c = this.open.get(connectionId);
    if (!c || c.socket.readyState !== WebSocket.OPEN) return error(410, 'GoneException', `connection ${connectionId} is gone`);
    if (req.method === 'POST') {
      if (body.length > MAX_MESSAGE_BYTES) return error(413, 'PayloadTooLargeException', 'Message too long');
      c.socket.send(body.toString('utf8'));
      const principal = String(c.authorizer?.nodeId ?? c.authorizer?.principalId ?? '');
      if (this.dropAfterDelivery.delete(principal)) c.socket.terminate(); // the network drops it, right after delivery
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end();
    }
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/json' });
      const identity = { sourceIp: c.sourceIp, userAgent: c.userAgent };
      return void res.end(JSON.stringify({ connectedAt: c.connectedAt.toISOString(), identity, lastActiveAt: c.lastActiveAt.toISOString() }));
    }
    if (req.method === 'DELETE') {
      c.socket.close(1000, 'closed by the server');
      res.writeHead(204);
      return void res.end();
    }
    return error(405, 'MethodNotAllowed', `${req.method} is not supported`);
  }

  /** Shut down: every socket goes without running $disconnect (the whole cloud is stopping). */
  close(): void {
    for (const c of this.open.values()) {
      c.socket.removeAllListeners('close');
      c.socket.terminate();
    }
    this.open.clear();
    this.wss.close();
  }
}
