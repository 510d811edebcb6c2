/**
 * The local WebSocket API (localcloud/websocket.ts) against a recording stand-in for the Lambda
 * runner: API-Gateway-shaped events for $connect (authorizer first), messages and $disconnect, the
 * route response, and the management API as the SDK calls it (SigV4-signed, GoneException).
 */
import { createServer, type Server } from 'node:http';
import { connect as tcpConnect } from 'node:net';
import { DeleteConnectionCommand, GetConnectionCommand, GoneException, PostToConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';
import { ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { LocalLambda } from '../../../localcloud/lambda.ts';
import { LocalWebSocketApi, MAX_MESSAGES_IN_FLIGHT } from '../../../localcloud/websocket.ts';

type Invocation = { fn: string; event: any };
let invocations: Invocation[];
let allow: boolean;
/** While set, the authorizer waits for it (a slow $connect). */
let authorizerGate: Promise<void> | undefined;
/** How long a $default invocation takes, and how many ran at once at most. */
let routeDelayMs = 0;
let running = 0;
let mostRunning = 0;
let server: Server;
let api: LocalWebSocketApi;
let base: string;

const lambda = {
  invoke: async (fn: string, event: any) => {
    invocations.push({ fn, event });
    if (fn === 'kmod-WsAuthorizer') {
      await authorizerGate;
      if (!allow) throw new Error(JSON.stringify({ errorType: 'Error', errorMessage: 'Unauthorized' }));
      return {
        principalId: 'node:n1',
        policyDocument: { Version: '2012-10-17', Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: event.methodArn }] },
        context: { kind: 'agent', nodeId: 'n1' },
      };
    }
    if (event.requestContext.routeKey === '$default') {
      mostRunning = Math.max(mostRunning, ++running);
      await new Promise((r) => setTimeout(r, routeDelayMs));
      running--;
      return { statusCode: 200, body: JSON.stringify({ echo: event.body }) };
    }
    return { statusCode: 200 };
  },
} as unknown as LocalLambda;

beforeEach(async () => {
  invocations = [];
  allow = true;
  authorizerGate = undefined;
  routeDelayMs = 0;
  running = 0;
  mostRunning = 0;
  server = createServer((req, res) => {
    const m = /^\/ws\/@connections\/([^/]+)$/.exec(req.url ?? '');
    if (m) return void api.manage(req, res, decodeURIComponent(m[1]));
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  api = new LocalWebSocketApi(lambda, () => `127.0.0.1:${port}`);
  server.on('upgrade', (req, socket, head) => void api.upgrade(req, socket, head));
  base = `127.0.0.1:${port}`;
});
afterEach(async () => {
  api.close();
  await new Promise((r) => server.close(r));
});

function open(headers: Record<string, string> = { 'x-agent-node-id': 'n1' }) {
  const ws = new WebSocket(`ws://${base}/ws?x=1`, { headers });
  return new Promise<{ ws: WebSocket; status: number }>((resolve) => {
    ws.once('open', () => resolve({ ws, status: 101 }));
    ws.once('unexpected-response', (_q, res) => {
      resolve({ ws, status: res.statusCode ?? 0 });
      res.resume();
    });
    ws.once('error', () => undefined);
  });
}

async function until(check: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const management = () =>
  new ApiGatewayManagementApiClient({ endpoint: `http://${base}/ws`, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });

describe('the local WebSocket API', () => {
  it('runs the authorizer, then $connect, with API Gateway’s event shapes', async () => {
    const { ws, status } = await open();
    expect(status).toBe(101);
    const [auth, connect] = invocations;
    expect(auth.fn).toBe('kmod-WsAuthorizer');
    expect(auth.event).toMatchObject({
      type: 'REQUEST',
      methodArn: expect.stringMatching(/^arn:aws:execute-api:us-east-1:000000000000:\w+\/ws\/\$connect$/),
      headers: { 'x-agent-node-id': 'n1' },
      queryStringParameters: { x: '1' },
      requestContext: { routeKey: '$connect', eventType: 'CONNECT', stage: 'ws', domainName: base, connectionId: expect.any(String) },
    });
    expect(connect.fn).toBe('kmod-WsConnections');
    expect(connect.event.requestContext).toMatchObject({
      routeKey: '$connect',
      eventType: 'CONNECT',
      connectionId: auth.event.requestContext.connectionId,
      authorizer: { kind: 'agent', nodeId: 'n1', principalId: 'node:n1' },
    });
    ws.close();
  });

  it('survives a client that resets its connection while the authorizer runs (it crashed the whole local cloud)', async () => {
    let release!: () => void;
    authorizerGate = new Promise<void>((r) => (release = r));
    const raw = tcpConnect(Number(base.split(':')[1]), '127.0.0.1');
    await new Promise<void>((r) => raw.once('connect', () => r()));
    raw.write(
      'GET /ws?x=1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nx-agent-node-id: n1\r\n\r\n',
    );
    await until(() => invocations.some((i) => i.fn === 'kmod-WsAuthorizer'));
    raw.resetAndDestroy(); // a TCP RST: ECONNRESET on the server's socket, which nothing else listens to yet
    await new Promise((r) => setTimeout(r, 100));
    release();
    // API Gateway tells the routes the client is gone; the next client is served as usual.
    await until(() => invocations.some((i) => i.event.requestContext?.routeKey === '$disconnect'));
    const next = await open();
    expect(next.status).toBe(101);
    next.ws?.close();
  });

  it('refuses the upgrade with 401 when the authorizer says Unauthorized, and runs no route', async () => {
    allow = false;
    expect((await open()).status).toBe(401);
    expect(invocations.map((i) => i.fn)).toEqual(['kmod-WsAuthorizer']);
  });

  it('sends messages to $default (no matching action) and returns the route response; a close runs $disconnect', async () => {
    const { ws } = await open();
    const reply = new Promise<string>((r) => ws.once('message', (d) => r(d.toString())));
    ws.send('{"type":"ping"}');
    expect(JSON.parse(await reply)).toEqual({ echo: '{"type":"ping"}' });
    const message = invocations.find((i) => i.event.requestContext.eventType === 'MESSAGE')!;
    expect(message.event).toMatchObject({
      body: '{"type":"ping"}',
      isBase64Encoded: false,
      requestContext: { routeKey: '$default', messageId: expect.any(String) },
    });
    ws.close(1000, 'bye');
    await new Promise((r) => setTimeout(r, 100));
    const disconnect = invocations.find((i) => i.event.requestContext.eventType === 'DISCONNECT')!;
    expect(disconnect.event.requestContext).toMatchObject({ routeKey: '$disconnect', disconnectStatusCode: 1000, disconnectReason: 'bye' });
  });

  it('serves the management API to the SDK: post, get, delete, and GoneException after', async () => {
    const { ws } = await open();
    const connectionId = invocations[0].event.requestContext.connectionId as string;
    const got = new Promise<string>((r) => ws.once('message', (d) => r(d.toString())));
    await management().send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: Buffer.from('{"type":"pong"}') }));
    expect(await got).toBe('{"type":"pong"}');
    const info = await management().send(new GetConnectionCommand({ ConnectionId: connectionId }));
    expect(info.ConnectedAt).toBeInstanceOf(Date);
    expect(info.Identity?.SourceIp).toBe('127.0.0.1');
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    await management().send(new DeleteConnectionCommand({ ConnectionId: connectionId }));
    expect(await closed).toBe(1000);
    await expect(management().send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: Buffer.from('x') }))).rejects.toBeInstanceOf(GoneException);
  });

  it('refuses management calls without a SigV4 signature', async () => {
    const { ws } = await open();
    const connectionId = invocations[0].event.requestContext.connectionId as string;
    const r = await fetch(`http://${base}/ws/@connections/${connectionId}`, { method: 'POST', body: 'x' });
    expect(r.status).toBe(403);
    expect(r.headers.get('x-amzn-errortype')).toBe('ForbiddenException');
    ws.close();
  });

  it('runs a flood of messages from one client a few at a time, answering every one (3000 at once took 1.9 GB and stalled the cloud)', async () => {
    routeDelayMs = 5;
    const { ws } = await open();
    const replies: string[] = [];
    ws.on('message', (d) => replies.push(d.toString()));
    const n = 600;
    for (let i = 0; i < n; i++) ws.send(JSON.stringify({ type: 'ping', i }));
    await until(() => replies.length === n, 20_000);
    expect(mostRunning).toBeGreaterThan(0);
    expect(mostRunning).toBeLessThanOrEqual(MAX_MESSAGES_IN_FLIGHT);
    // Started in the order sent.
    const started = invocations.filter((i) => i.event.requestContext.routeKey === '$default').map((i) => JSON.parse(i.event.body).i);
    expect(started).toEqual([...Array(n).keys()]);
    ws.close();
  });
});
