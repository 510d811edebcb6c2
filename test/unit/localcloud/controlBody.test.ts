/**
 * The local cloud's own endpoints read bodies up to a bound: a 200 MB POST to
 * /_local/identity/token grew the local cloud by about 190 MB before its 400.
 */
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_CONTROL_BODY_BYTES } from '../../../localcloud/controlBody.ts';
import type { DevIssuer } from '../../../localcloud/identity.ts';
import type { Fleet } from '../../../localcloud/fleet.ts';
import { fleetControl } from '../../../localcloud/fleetControl.ts';
import { identityControl } from '../../../localcloud/identityControl.ts';
import type { LocalWebSocketApi } from '../../../localcloud/websocket.ts';
import { websocketControl } from '../../../localcloud/websocketControl.ts';

const servers: ReturnType<typeof createServer>[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => unknown) {
  const server = createServer((req, res) => void handler(req, res));
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

/** Sends `bytes` of body in 64 KiB writes (no content-length: chunked) and reads the answer. */
function send(port: number, method: string, path: string, bytes: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' || e.code === 'EPIPE' ? undefined : reject(e)));
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    let sent = 0;
    const write = () => {
      while (sent < bytes) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', write);
      }
      req.end();
    };
    write();
  });
}

describe('bodies sent to the local cloud’s own endpoints', () => {
  it('/_local/identity/token answers 413 past the bound, without reading the rest', async () => {
    const port = await serve(identityControl({} as DevIssuer));
    const r = await send(port, 'POST', '/_local/identity/token', 8 * 1024 * 1024);
    expect(r.status).toBe(413);
    expect(JSON.parse(r.body)).toEqual({ code: 'RequestTooLarge', message: `the request body exceeds ${MAX_CONTROL_BODY_BYTES} bytes` });
  });

  it('/_local/websocket/faults too, and still takes a body within it', async () => {
    const ws = { dropAfterDelivery: new Set<string>(), connections: [] } as unknown as LocalWebSocketApi;
    const port = await serve(websocketControl(ws));
    expect((await send(port, 'PUT', '/_local/websocket/faults', MAX_CONTROL_BODY_BYTES + 64 * 1024)).status).toBe(413);
    const ok = await new Promise<number>((resolve) => {
      const req = request({ host: '127.0.0.1', port, path: '/_local/websocket/faults', method: 'PUT' }, (res) => resolve(res.statusCode!));
      req.end(JSON.stringify({ dropAfterDelivery: ['node-1'] }));
    });
    expect(ok).toBe(200);
    expect([...(ws as unknown as { dropAfterDelivery: Set<string> }).dropAfterDelivery]).toEqual(['node-1']);
  });

  it('/_local/fleet/nodes/{id}/faults too, and still takes a body within it', async () => {
    let faults: unknown = {};
    const fleet = { nodes: new Map([['node-1', { agent: { faults, setFaults: (f: unknown) => (faults = f) } }]]) } as unknown as Fleet;
    const port = await serve(fleetControl(fleet));
    const big = await send(port, 'PUT', '/_local/fleet/nodes/node-1/faults', MAX_CONTROL_BODY_BYTES + 64 * 1024);
    expect(big.status).toBe(413);
    expect(JSON.parse(big.body).code).toBe('RequestTooLarge');
    expect(faults).toEqual({});
    const ok = await new Promise<number>((resolve) => {
      const req = request({ host: '127.0.0.1', port, path: '/_local/fleet/nodes/node-1/faults', method: 'PUT' }, (res) => resolve(res.statusCode!));
      req.end(JSON.stringify({ unhealthyAfterLoad: true }));
    });
    expect(ok).toBe(200);
    expect(faults).toMatchObject({ unhealthyAfterLoad: true });
  });
});
