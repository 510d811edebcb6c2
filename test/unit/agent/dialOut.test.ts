/**
 * The dial-out transport on the agent side: message framing, the one request path both transports
 * share (NodeAgent.serve), the reconnecting client against a real `ws` server, and its backoff.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { NodeAgent } from '../../../functions/agent/agent.ts';
import { backoffDelay, DialOutConnection } from '../../../functions/agent/dialOut.ts';
import { signRequest, verifyRequest, type AgentKey } from '../../../functions/agent/protocol.ts';
import {
  agentConnectPath,
  agentMessageSchema,
  NODE_ID_HEADER,
  orchestratorMessageSchema,
  parseMessage,
  type AgentCommand,
} from '../../../functions/agent/wsProtocol.ts';

const key: AgentKey = { id: 'nk-1', secret: 'node-secret' };
const bytes = Buffer.from('module v2');
const sha = createHash('sha256').update(bytes).digest('hex');

describe('message framing', () => {
  it('parses the orchestrator’s requests and pongs, and nothing else', () => {
    const cmd: AgentCommand = { type: 'request', requestId: 'req-0001', method: 'GET', path: '/v1/health', headers: { 'x-agent-key-id': 'k' }, body: '' };
    expect(parseMessage(orchestratorMessageSchema, JSON.stringify(cmd))).toEqual(cmd);
    expect(parseMessage(orchestratorMessageSchema, '{"type":"pong"}')).toEqual({ type: 'pong' });
    for (const bad of [
      'not json',
      '{"type":"request"}',
      JSON.stringify({ ...cmd, method: 'PATCH' }),
      JSON.stringify({ ...cmd, path: 'v1/health' }),
      JSON.stringify({ ...cmd, requestId: 'bad id!' }),
      JSON.stringify({ ...cmd, extra: 1 }),
      '{"type":"response","requestId":"req-0001","status":200,"body":{}}',
    ])
      expect(parseMessage(orchestratorMessageSchema, bad), bad).toBeUndefined();
  });

  it('parses the agent’s replies and pings, and nothing else', () => {
    const reply = { type: 'response', requestId: 'req-0001', status: 422, body: { code: 'DigestMismatch' } };
    expect(parseMessage(agentMessageSchema, JSON.stringify(reply))).toEqual(reply);
    expect(parseMessage(agentMessageSchema, '{"type":"ping"}')).toEqual({ type: 'ping' });
    for (const bad of ['{"type":"response","requestId":"req-0001","status":99,"body":{}}', '{"action":"subscribe","all":true}', '[]'])
      expect(parseMessage(agentMessageSchema, bad), bad).toBeUndefined();
  });
});

describe('backoff', () => {
  it('is fully jittered below a doubling bound, capped', () => {
    expect([0, 1, 2, 3, 10].map((a) => backoffDelay(a, 500, 30_000, () => 0.999999))).toEqual([499, 999, 1999, 3999, 29_999]);
    expect(backoffDelay(5, 500, 30_000, () => 0)).toBe(0);
    expect(backoffDelay(1000, 500, 30_000, () => 0.5)).toBe(15_000); // no overflow for long outages
  });
});

describe('NodeAgent.serve: one request path for both transports', () => {
  const agent = () => new NodeAgent({ nodeId: 'n1', keys: () => [key], simulation: true, initialModules: { mod: '1.0.0' }, fetchArtifact: async () => bytes });
  const signed = (method: string, path: string, body = '') => ({ method, path, headers: signRequest(key, method, path, body), body });

  it('verifies the signature, routes, and answers errors as {code, message}', async () => {
    const a = agent();
    const body = JSON.stringify({ deploymentId: 'd1', version: '2.0.0', artifactUrl: 'http://x/a', sha256: sha });
    expect(await a.serve(signed('POST', '/v1/modules/mod/deploy', body))).toEqual({
      status: 200,
      body: { nodeId: 'n1', module: 'mod', version: '2.0.0', previousVersion: '1.0.0', replayed: false },
    });
    expect((await a.serve(signed('POST', '/v1/modules/mod/deploy', body)))?.body).toMatchObject({ replayed: true });
    expect(await a.serve({ ...signed('GET', '/v1/health'), path: '/v1/metrics' })).toEqual({
      status: 401,
      body: { code: 'Unauthorized', message: 'bad signature' },
    });
    expect((await a.serve(signed('GET', '/v1/nowhere')))?.status).toBe(404);
    expect((await a.serve(signed('POST', '/v1/modules/mod/deploy', 'x'.repeat(65 * 1024))))?.status).toBe(413);
  });

  it("logs one line per module operation with the orchestrator's trace and correlation ids, never for reads", async () => {
    const lines: string[] = [];
    const a = new NodeAgent({
      nodeId: 'n1',
      keys: () => [key],
      simulation: true,
      initialModules: { mod: '1.0.0' },
      fetchArtifact: async () => bytes,
      log: (l) => lines.push(l),
    });
    const body = JSON.stringify({ deploymentId: 'd1', version: '2.0.0', artifactUrl: 'http://x/a', sha256: sha });
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const req = signed('POST', '/v1/modules/mod/deploy', body);
    await a.serve({ ...req, headers: { ...req.headers, traceparent, 'x-correlation-id': 'req-42' } });
    await a.serve(signed('GET', '/v1/health'));
    const bad = signed('POST', '/v1/modules/mod/rollback', '{}');
    await a.serve({ ...bad, headers: { ...bad.headers, traceparent: 'forged\nline', 'x-correlation-id': 'forged\nline' } });
    // Unsigned: refused, and no line (an outsider cannot put a trace id into the host's log).
    expect((await a.serve({ method: 'POST', path: '/v1/modules/mod/deploy', headers: { traceparent }, body }))?.status).toBe(401);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^\S+Z POST \/v1\/modules\/mod\/deploy → 200 trace=4bf92f3577b34da6a3ce929d0e0e4736 correlation=req-42$/);
    expect(lines[1]).toMatch(/^\S+Z POST \/v1\/modules\/mod\/rollback → 400 BadRequest$/);
  });

  it('never answers for a simulated unresponsive node', async () => {
    const a = agent();
    a.setFaults({ unresponsive: true });
    expect(await a.serve(signed('GET', '/v1/health'))).toBeUndefined();
  });
});

/** A stand-in for the orchestrator's WebSocket endpoint: checks the signed connect like the authorizer does. */
class FakeOrchestrator {
  readonly wss: WebSocketServer;
  readonly sockets: WebSocket[] = [];
  readonly connects: { nodeId: string; timestamp: number }[] = [];
  refuse = false;
  answerPings = true;
  constructor() {
    this.wss = new WebSocketServer({
      port: 0,
      verifyClient: (info: { req: IncomingMessage }, done: (ok: boolean, code?: number) => void) => {
        const nodeId = String(info.req.headers[NODE_ID_HEADER]);
        const ok = !this.refuse && verifyRequest([key], 'GET', agentConnectPath(nodeId), '', info.req.headers).ok;
        if (ok) this.connects.push({ nodeId, timestamp: Number(info.req.headers['x-agent-timestamp']) });
        done(ok, 401);
      },
    });
    this.wss.on('connection', (ws) => {
      this.sockets.push(ws);
      ws.on('message', (d) => {
        if (this.answerPings && JSON.parse(d.toString()).type === 'ping') ws.send('{"type":"pong"}');
      });
    });
  }
  get url() {
    return `ws://127.0.0.1:${(this.wss.address() as { port: number }).port}`;
  }
  /** Send a command on the newest connection and resolve with the agent's reply. */
  command(cmd: AgentCommand): Promise<unknown> {
    const ws = this.sockets.at(-1)!;
    return new Promise((resolve) => {
      const onMessage = (d: Buffer) => {
        const m = JSON.parse(d.toString());
        if (m.type === 'response' && m.requestId === cmd.requestId) {
          ws.off('message', onMessage);
          resolve(m);
        }
      };
      ws.on('message', onMessage);
      ws.send(JSON.stringify(cmd));
    });
  }
  close() {
    for (const s of this.sockets) s.terminate();
    return new Promise((r) => this.wss.close(r));
  }
}

describe('DialOutConnection', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });
  const setup = (opts: Partial<ConstructorParameters<typeof DialOutConnection>[0]> = {}) => {
    const server = new FakeOrchestrator();
    const agent = new NodeAgent({ nodeId: 'n1', keys: () => [key], simulation: true, initialModules: { mod: '1.0.0' }, fetchArtifact: async () => bytes });
    const log: string[] = [];
    const conn = new DialOutConnection({
      url: server.url,
      nodeId: 'n1',
      key: () => key,
      serve: (req) => agent.serve(req),
      log: (l) => log.push(l),
      backoffBaseMs: 20,
      backoffCapMs: 100,
      ...opts,
    });
    cleanup.push(
      () => server.close(),
      () => conn.stop(),
    );
    return { server, agent, conn, log };
  };
  const signedCommand = (requestId: string, method: AgentCommand['method'], path: string, body = ''): AgentCommand => ({
    type: 'request',
    requestId,
    method,
    path,
    headers: signRequest(key, method, path, body),
    body,
  });

  it('connects with a signed GET /ws/agent/<nodeId>, runs commands through NodeAgent.serve and answers by requestId', async () => {
    const { server, conn } = setup();
    conn.start();
    await conn.whenConnected();
    expect(server.connects).toEqual([{ nodeId: 'n1', timestamp: expect.any(Number) }]);
    const body = JSON.stringify({ deploymentId: 'd1', version: '2.0.0', artifactUrl: 'http://x/a', sha256: sha });
    const [deploy, health] = await Promise.all([
      server.command(signedCommand('req-deploy-1', 'POST', '/v1/modules/mod/deploy', body)),
      server.command(signedCommand('req-health-1', 'GET', '/v1/health')),
    ]);
    expect(deploy).toEqual({ type: 'response', requestId: 'req-deploy-1', status: 200, body: expect.objectContaining({ version: '2.0.0', replayed: false }) });
    expect(health).toMatchObject({ type: 'response', requestId: 'req-health-1', status: 200, body: { nodeId: 'n1', status: 'healthy' } });
    const forged = { ...signedCommand('req-forged-1', 'GET', '/v1/health'), path: '/v1/modules' };
    expect(await server.command(forged)).toMatchObject({ status: 401, body: { code: 'Unauthorized' } });
  });

  it('reconnects after a drop with a newer connect timestamp; a command replayed there is answered from the idempotency record', async () => {
    const { server, conn, log } = setup();
    conn.start();
    await conn.whenConnected();
    const body = JSON.stringify({ deploymentId: 'd2', version: '2.0.0', artifactUrl: 'http://x/a', sha256: sha });
    expect(await server.command(signedCommand('req-a-00001', 'POST', '/v1/modules/mod/deploy', body))).toMatchObject({ body: { replayed: false } });
    server.sockets.at(-1)!.terminate(); // the network drops the connection
    await new Promise((r) => setTimeout(r, 10));
    await conn.whenConnected();
    expect(server.connects).toHaveLength(2);
    expect(server.connects[1].timestamp).toBeGreaterThan(server.connects[0].timestamp);
    expect(conn.connects).toBe(2);
    expect(await server.command(signedCommand('req-a-00002', 'POST', '/v1/modules/mod/deploy', body))).toMatchObject({ body: { replayed: true } });
    expect(log.join('\n')).toMatch(/dial-out connection closed \(1006\); reconnecting in \d+ ms/);
  });

  it('keeps retrying a refused connect, saying why once', async () => {
    const { server, conn, log } = setup();
    server.refuse = true;
    conn.start();
    await new Promise((r) => setTimeout(r, 400));
    expect(conn.connected).toBe(false);
    expect(log.filter((l) => l.includes('connect refused (HTTP 401)'))).toHaveLength(1);
    server.refuse = false;
    await conn.whenConnected();
    expect(conn.connected).toBe(true);
  });

  it('pings, and drops a connection whose pong does not come', async () => {
    const { server, conn, log } = setup({ keepaliveMs: 30, pongTimeoutMs: 60 });
    conn.start();
    await conn.whenConnected();
    await new Promise((r) => setTimeout(r, 120));
    expect(conn.connects).toBe(1); // pongs came: still the first connection
    server.answerPings = false;
    await new Promise((r) => setTimeout(r, 250));
    expect(log.join('\n')).toContain('no pong from the orchestrator');
    expect(conn.connects).toBeGreaterThan(1);
  });
});
