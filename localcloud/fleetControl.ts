/**
 * Fault injection for the simulated fleet, over HTTP on the local API port (local cloud only):
 *
 *   GET    /_local/fleet                          every node: environment, address, modules, faults
 *   GET    /_local/fleet/nodes/{nodeId}/faults    one node's faults
 *   PUT    /_local/fleet/nodes/{nodeId}/faults    set them, e.g. {"failLoad": true}
 *   DELETE /_local/fleet/nodes/{nodeId}/faults    clear them
 *
 * Faults: failLoad (true or a list of versions), unhealthyAfterLoad, degrade {errorRatePercent,
 * latencyMs, cpuPercent, memoryPercent, slowRequestPercent + slowRequestMs (that share of requests
 * takes that much longer)} once a new version is loaded (or at once with degradeNow: true, a node
 * going bad on its own), unresponsive, failSmokeTest.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { readControlText } from './controlBody.ts';
import type { Fleet } from './fleet.ts';

const faultsSchema = z
  .object({
    failLoad: z.union([z.boolean(), z.array(z.string())]).optional(),
    unhealthyAfterLoad: z.boolean().optional(),
    degrade: z
      .object({
        errorRatePercent: z.number(),
        latencyMs: z.number(),
        cpuPercent: z.number(),
        memoryPercent: z.number(),
        slowRequestPercent: z.number().min(0).max(100),
        slowRequestMs: z.number().min(0).max(60_000),
      })
      .partial()
      .strict()
      .refine((d) => (d.slowRequestPercent === undefined) === (d.slowRequestMs === undefined), {
        message: 'slowRequestPercent and slowRequestMs go together',
      })
      .optional(),
    degradeNow: z.boolean().optional(),
    unresponsive: z.boolean().optional(),
    failSmokeTest: z.boolean().optional(),
  })
  .strict();

function send(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

export function fleetControl(fleet: Fleet) {
  return async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://local');
    if (url.pathname === '/_local/fleet' && req.method === 'GET') {
      return send(res, 200, {
        nodes: [...fleet.nodes.values()].map((n) => ({
          nodeId: n.agent.nodeId,
          environment: n.environment,
          address: n.address,
          modules: n.agent.modules,
          faults: n.agent.faults,
        })),
      });
    }
    const m = /^\/_local\/fleet\/nodes\/([^/]+)\/faults$/.exec(url.pathname);
    if (!m) return send(res, 404, { code: 'NotFound', message: `no route ${req.method} ${url.pathname}` });
    const node = fleet.nodes.get(m[1]);
    if (!node) return send(res, 404, { code: 'NotFound', message: `no node ${m[1]} in the simulated fleet` });
    if (req.method === 'GET') return send(res, 200, { nodeId: m[1], faults: node.agent.faults });
    if (req.method === 'DELETE') {
      node.agent.setFaults({});
      return send(res, 200, { nodeId: m[1], faults: {} });
    }
    if (req.method === 'PUT') {
      const body = await readControlText(req, res);
      if (body === undefined) return;
      let parsed: ReturnType<typeof faultsSchema.safeParse>;
      try {
        parsed = faultsSchema.safeParse(JSON.parse(body || '{}'));
      } catch {
        return send(res, 400, { code: 'ValidationError', message: 'the body is not JSON' });
      }
      if (!parsed.success)
        return send(res, 400, { code: 'ValidationError', message: parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ') });
      node.agent.setFaults(parsed.data);
      return send(res, 200, { nodeId: m[1], faults: node.agent.faults });
    }
    return send(res, 405, { code: 'MethodNotAllowed', message: `${req.method} is not allowed here` });
  };
}
