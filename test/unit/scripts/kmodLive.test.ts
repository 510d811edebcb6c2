/**
 * kmod --watch over live events (scripts/lib/kmod/watch.ts liveSource) against a real WebSocket server
 * speaking the operator protocol (docs/asyncapi.json): events drive the GETs, a dropped socket is
 * reconnected with `after`, and a WebSocket that cannot be reached falls back to polling.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { createKmodClient } from '../../../sdk/typescript/client.ts';
import { deployment } from './deploymentFixture.ts';
import { liveSource } from '../../../scripts/lib/kmod/watch.ts';

const id = deployment('Running').executionId;
const dep = (status: string, nodesDeployed = 0) =>
  deployment(status, {
    targetEnvironment: 'Development',
    stages: [{ name: 'Development', kind: 'environment', status: 'Running', nodesTotal: 3, nodesDeployed }],
  });

/** The API's GET of the deployment: answers the current snapshot, counting the calls. */
function api() {
  const state = { current: dep('Running'), gets: 0 };
  const fetch = async () => {
    state.gets++;
    return Response.json(state.current);
  };
  return { state, client: createKmodClient({ baseUrl: 'http://api.test', token: 't', fetch }) };
}

const servers: WebSocketServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    for (const c of s.clients) c.terminate();
    await new Promise((r) => s.close(r));
  }
});

async function operatorServer() {
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  servers.push(server);
  await once(server, 'listening');
  const subscribes: { token: string | null; message: any }[] = [];
  const sockets: WebSocket[] = [];
  let seq = 0;
  server.on('connection', (ws, req) => {
    sockets.push(ws);
    const token = new URL(req.url ?? '/', 'http://x').searchParams.get('token');
    ws.on('message', (data) => {
      const message = JSON.parse(String(data));
      subscribes.push({ token, message });
      ws.send(JSON.stringify({ type: 'subscribed', subscription: `deployment#${message.deploymentId}`, seq }));
    });
  });
  const send = (event: Record<string, unknown>) => {
    const e = { seq: ++seq, at: new Date().toISOString(), ...event };
    sockets.at(-1)?.send(JSON.stringify(e));
    return e.seq;
  };
  return { url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`, subscribes, sockets, send };
}

const until = async (what: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!what()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('kmod --watch over live events', () => {
  it('subscribes to the deployment with the token, and each event (not a timer) brings the next snapshot', async () => {
    const ws = await operatorServer();
    const { state, client } = api();
    const seen: string[] = [];
    const source = liveSource(client, { wsUrl: ws.url, token: 'jwt-of-viewer', pollMs: 60_000, safetyMs: 60_000 });
    const done = (async () => {
      for await (const d of source.updates(id)) seen.push(`${d.status} ${d.stages[0]?.nodesDeployed}`);
    })();
    await until(() => seen.length === 1 && ws.subscribes.length === 1);
    expect(ws.subscribes[0]).toEqual({ token: 'jwt-of-viewer', message: { action: 'subscribe', deploymentId: id } });
    state.current = dep('Running', 2);
    ws.send({ type: 'deployment.stage', deploymentId: id, stage: 'Development', nodesDeployed: 2 });
    await until(() => seen.length === 2);
    // Events of other deployments bring nothing.
    const gets = state.gets;
    ws.send({ type: 'deployment.status', deploymentId: 'dep-zzzzzzzzz-000000000000', status: 'Running' });
    await new Promise((r) => setTimeout(r, 200));
    expect(state.gets).toBe(gets);
    state.current = dep('Succeeded', 3);
    ws.send({ type: 'deployment.status', deploymentId: id, status: 'Succeeded' });
    await done;
    expect(seen).toEqual(['Running 0', 'Running 2', 'Succeeded 3']);
  });

  it('a burst of events becomes one GET', async () => {
    const ws = await operatorServer();
    const { state, client } = api();
    const seen: string[] = [];
    const done = (async () => {
      for await (const d of liveSource(client, { wsUrl: ws.url, token: 't', pollMs: 60_000, safetyMs: 60_000 }).updates(id)) seen.push(d.status);
    })();
    await until(() => seen.length === 1 && ws.subscribes.length === 1);
    const before = state.gets;
    state.current = dep('Succeeded', 3);
    for (let i = 0; i < 20; i++) ws.send({ type: 'node.status', deploymentId: id, nodeId: `n${i}` });
    await done;
    expect(state.gets - before).toBeLessThanOrEqual(2);
    expect(seen).toEqual(['Running', 'Succeeded']);
  });

  it('a dropped socket is reconnected with after = the last seq seen, and polling covers the gap', async () => {
    const ws = await operatorServer();
    const { state, client } = api();
    const notes: string[] = [];
    const seen: string[] = [];
    const done = (async () => {
      for await (const d of liveSource(client, { wsUrl: ws.url, token: 't', pollMs: 50, safetyMs: 60_000, note: (m) => notes.push(m) }).updates(id))
        seen.push(`${d.status} ${d.stages[0]?.nodesDeployed}`);
    })();
    await until(() => ws.subscribes.length === 1);
    state.current = dep('Running', 1);
    const last = ws.send({ type: 'deployment.stage', deploymentId: id, nodesDeployed: 1 });
    await until(() => seen.includes('Running 1'));
    ws.sockets[0].terminate();
    state.current = dep('Running', 2); // seen by polling while the socket is down
    await until(() => seen.includes('Running 2'));
    await until(() => ws.subscribes.length === 2, 10_000);
    expect(ws.subscribes[1].message).toEqual({ action: 'subscribe', deploymentId: id, after: last });
    state.current = dep('Succeeded', 3);
    ws.send({ type: 'deployment.status', deploymentId: id, status: 'Succeeded' });
    await done;
    expect(notes).toEqual(['live events lost; polling while reconnecting', 'live events back']);
    expect(seen.at(-1)).toBe('Succeeded 3');
  });

  it('a WebSocket that cannot be reached: polling, said once', async () => {
    const ws = await operatorServer();
    const url = ws.url;
    await new Promise((r) => servers.pop()?.close(r));
    const { state, client } = api();
    const notes: string[] = [];
    const seen: string[] = [];
    const done = (async () => {
      for await (const d of liveSource(client, { wsUrl: url, token: 't', pollMs: 20, note: (m) => notes.push(m) }).updates(id)) seen.push(d.status);
    })();
    await until(() => seen.length === 1);
    state.current = dep('Succeeded', 3);
    await done;
    expect(seen).toEqual(['Running', 'Succeeded']);
    expect(notes).toEqual([`live events unavailable at ${url}; polling every 20 ms`]);
  });
});
