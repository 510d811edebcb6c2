/**
 * The local WebSocket API's test controls (no AWS counterpart):
 *
 *   GET /_local/websocket/connections                      open connections and who they are
 *   PUT /_local/websocket/faults {"dropAfterDelivery":[…]}   drop each named node's connection right
 *                                                           after the next message is delivered to it
 *                                                           (a network failure mid-command)
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readControlText } from './controlBody.ts';
import type { LocalWebSocketApi } from './websocket.ts';

function send(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

export function websocketControl(ws: LocalWebSocketApi) {
  return async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && path === '/_local/websocket/connections') return send(res, 200, { items: ws.connections });
    if (req.method === 'PUT' && path === '/_local/websocket/faults') {
      const body = await readControlText(req, res);
      if (body === undefined) return;
      let faults: { dropAfterDelivery?: unknown };
      try {
        faults = JSON.parse(body || '{}') as { dropAfterDelivery?: unknown };
      } catch {
        return send(res, 400, { code: 'BadRequest', message: 'body is not JSON' });
      }
      const ids = faults.dropAfterDelivery;
      if (!Array.isArray(ids) || !ids.every((i) => typeof i === 'string'))
        return send(res, 400, { code: 'BadRequest', message: 'dropAfterDelivery must be a list of node ids' });
      for (const id of ids) ws.dropAfterDelivery.add(id);
      return send(res, 200, { dropAfterDelivery: [...ws.dropAfterDelivery] });
    }
    return send(res, 404, { code: 'NotFound', message: `no local WebSocket control at ${req.method} ${path}` });
  };
}
