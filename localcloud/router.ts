/**
 * The local traffic router (docs/adr/0020-traffic-routers.md): a real HTTP reverse proxy in front
 * of one environment, splitting requests by weight across the nodes' workload endpoints. What it
 * routes is set by the product through its control API (the `local` TrafficRouter adapter in
 * functions/lib/trafficRouter.ts), as an ALB's weights are set through the ELB API:
 *
 * - `PUT  /_kmod/router/routes` `{ groups: [{ name, weight, backends: [{ nodeId, colour?, url }] }], preview?: [...] }`
 *   replaces the whole table in one assignment: a request is routed by the table that was current
 *   when it arrived, so a switch is atomic (no request after the PUT returns reaches the old table).
 *   With `?ifVersion=N` it is refused (409) unless the table is at version N (read-modify-write).
 * - `GET  /_kmod/router/routes`, `GET /_kmod/router/stats` (requests served per node, cumulative).
 *
 * Control calls need `authorization: Bearer <token>`; every other request is proxied. Requests with
 * `x-kmod-preview: 1` go to the preview backends (the Blue-Green idle colour) instead. Every answer
 * names the node and colour that served it (`x-kmod-node`, `x-kmod-colour`, `x-kmod-route`).
 */
import { timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { Agent, createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { dirname } from 'node:path';
import { z } from 'zod';

const backendSchema = z.object({
  nodeId: z.string().min(1),
  colour: z.enum(['blue', 'green']).optional(),
  url: z
    .string()
    .url()
    .refine((u) => /^https?:$/.test(new URL(u).protocol), 'a backend is an http(s) URL'),
});
export const routeTableSchema = z.object({
  groups: z
    .array(z.object({ name: z.string().min(1), weight: z.number().min(0).max(100), backends: z.array(backendSchema) }))
    .refine((gs) => new Set(gs.map((g) => g.name)).size === gs.length, 'group names are unique'),
  preview: z.array(backendSchema).optional(),
  by: z.string().optional(),
});

type ForwardOutcome = 'answered' | 'unreachable' | 'stale-connection';

/** Bodies the router reads whole: proxied requests with a body, and control calls. */
const MAX_PROXIED_BODY_BYTES = 10 * 1024 * 1024;
const MAX_CONTROL_BODY_BYTES = 1024 * 1024;
/**
 * Pooled upstream connections idle longer than this are closed by the router, before a backend's
 * own keep-alive timeout (Node's default is 5 s) can close them under a request being sent.
 */
export const UPSTREAM_IDLE_MS = 4_000;
/** Extra tries for requests that failed on a reused connection the backend had just closed (never sent to the workload). */
const STALE_CONNECTION_RETRIES = 3;
export type Backend = z.infer<typeof backendSchema>;
export type RouteTable = z.infer<typeof routeTableSchema>;

export interface RouterStats {
  requests: number;
  failed: number;
  /** Requests answered per node (live and preview), cumulative since the router started. */
  nodes: Record<string, number>;
  /** Requests per route group (live traffic), cumulative. */
  groups: Record<string, number>;
  preview: number;
  tableVersion: number;
}

/** One group's backends taken in turn; the groups by smooth weighted round-robin (nginx's), so shares are exact, not luck. */
class Table {
  private readonly current: number[];
  private readonly next: number[];
  private previewNext = 0;

  constructor(
    readonly spec: RouteTable,
    readonly version: number,
  ) {
    this.current = spec.groups.map(() => 0);
    this.next = spec.groups.map(() => 0);
  }

  pickLive(): { group: string; backend: Backend } | undefined {
    const live = this.spec.groups.map((g, i) => ({ g, i })).filter(({ g }) => g.weight > 0 && g.backends.length > 0);
    if (live.length === 0) return undefined;
    const total = live.reduce((s, { g }) => s + g.weight, 0);
    let best = live[0];
    for (const x of live) {
      this.current[x.i] += x.g.weight;
      if (this.current[x.i] > this.current[best.i]) best = x;
    }
    this.current[best.i] -= total;
    const b = best.g.backends[this.next[best.i]++ % best.g.backends.length];
    return { group: best.g.name, backend: b };
  }

  pickPreview(): Backend | undefined {
    const p = this.spec.preview ?? [];
    return p.length ? p[this.previewNext++ % p.length] : undefined;
  }
}

export class LocalRouter {
  private server?: Server;
  private table: Table;
  private readonly stats: RouterStats = { requests: 0, failed: 0, nodes: {}, groups: {}, preview: 0, tableVersion: 0 };
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 64, timeout: UPSTREAM_IDLE_MS });
  private readonly httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 64, timeout: UPSTREAM_IDLE_MS });
  url = '';

  constructor(
    readonly environment: string,
    private readonly token: string,
    private readonly stateFile?: string,
    private readonly upstreamTimeoutMs = 10_000,
  ) {
    const saved = stateFile && existsSync(stateFile) ? routeTableSchema.safeParse(JSON.parse(readFileSync(stateFile, 'utf8'))) : undefined;
    this.table = new Table(saved?.success ? saved.data : { groups: [] }, 0);
  }

  get routes(): RouteTable {
    return this.table.spec;
  }

  /** Replace the table in one assignment (the atomic switch). */
  setRoutes(spec: RouteTable): number {
    const version = this.table.version + 1;
    this.table = new Table(spec, version);
    this.stats.tableVersion = version;
    if (this.stateFile) {
      mkdirSync(dirname(this.stateFile), { recursive: true });
      writeFileSync(`${this.stateFile}.tmp`, JSON.stringify(spec));
      renameSync(`${this.stateFile}.tmp`, this.stateFile);
    }
    return version;
  }

  async listen(port = 0, host = '127.0.0.1'): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 30_000;
    await new Promise<void>((r) => this.server!.listen(port, host, r));
    this.url = `http://${host}:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  async close(): Promise<void> {
    this.agent.destroy();
    this.httpsAgent.destroy();
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server!.close(() => r()));
  }

  private authorised(req: IncomingMessage): boolean {
    const given = Buffer.from(String(req.headers.authorization ?? ''));
    const want = Buffer.from(`Bearer ${this.token}`);
    return given.length === want.length && timingSafeEqual(given, want);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path.startsWith('/_kmod/router/')) return this.control(req, res, path);
    const preview = req.headers['x-kmod-preview'] === '1';
    this.stats.requests++;
    // A request that could not reach its backend is tried once more on the next one (idempotent methods only).
    const attempts = req.method === 'GET' || req.method === 'HEAD' ? 2 : 1;
    const body = attempts === 1 ? await readAll(req, MAX_PROXIED_BODY_BYTES) : Buffer.alloc(0);
    if (!body) {
      this.stats.failed++;
      return json(res, 413, { code: 'PayloadTooLarge', message: `request bodies through the router are at most ${MAX_PROXIED_BODY_BYTES} bytes` });
    }
    let staleRetries = STALE_CONNECTION_RETRIES;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const pick = preview ? this.table.pickPreview() : this.table.pickLive();
      const backend = pick && 'backend' in pick ? pick.backend : (pick as Backend | undefined);
      if (!backend) {
        this.stats.failed++;
        return json(res, 503, { code: 'NoBackend', message: `no ${preview ? 'preview' : 'live'} backend in ${this.environment}` });
      }
      const outcome = await this.forward(req, res, body, backend, preview ? 'preview' : 'live');
      if (outcome === 'answered') {
        this.stats.nodes[backend.nodeId] = (this.stats.nodes[backend.nodeId] ?? 0) + 1;
        if (preview) this.stats.preview++;
        else if (pick && 'group' in pick) this.stats.groups[pick.group] = (this.stats.groups[pick.group] ?? 0) + 1;
        return;
      }
      if (res.headersSent) break;
      // The keep-alive race (a backend closing an idle connection as the router reuses it) says
      // nothing about the backend: the same try goes again, on a new connection or another pooled one.
      if (outcome === 'stale-connection' && attempts > 1 && staleRetries-- > 0) attempt--;
    }
    this.stats.failed++;
    if (!res.headersSent) json(res, 502, { code: 'BadGateway', message: `no backend in ${this.environment} answered` });
    else res.destroy();
  }

  /**
   * Proxy to one backend: `answered`, or why not (nothing sent to the client yet): `unreachable`, or
   * `stale-connection` when a reused pooled connection was reset before any answer came.
   */
  private forward(req: IncomingMessage, res: ServerResponse, body: Buffer, b: Backend, route: string): Promise<ForwardOutcome> {
    return new Promise((resolve) => {
      // A backend the router cannot call (a table saved by an older version) fails this request, never the process.
      try {
        this.send(req, res, body, b, route, resolve);
      } catch {
        resolve('unreachable');
      }
    });
  }

  private send(req: IncomingMessage, res: ServerResponse, body: Buffer, b: Backend, route: string, resolve: (outcome: ForwardOutcome) => void): void {
    {
      const target = new URL(b.url);
      const https = target.protocol === 'https:';
      const headers: Record<string, string | string[] | undefined> = { ...req.headers, host: target.host, 'x-forwarded-for': req.socket.remoteAddress ?? '' };
      delete headers['x-kmod-preview'];
      delete headers.connection;
      const up = (https ? httpsRequest : request)(
        {
          protocol: target.protocol,
          hostname: target.hostname,
          port: target.port,
          method: req.method,
          path: `${target.pathname.replace(/\/$/, '')}${req.url ?? '/'}`,
          headers,
          agent: https ? this.httpsAgent : this.agent,
          timeout: this.upstreamTimeoutMs,
        },
        (upRes) => {
          res.writeHead(upRes.statusCode ?? 502, {
            ...upRes.headers,
            'x-kmod-node': b.nodeId,
            'x-kmod-colour': b.colour ?? 'none',
            'x-kmod-route': route,
          });
          upRes.pipe(res);
          upRes.on('end', () => resolve('answered'));
          upRes.on('error', () => resolve('answered'));
        },
      );
      up.on('timeout', () => up.destroy(new Error('upstream timeout')));
      up.on('error', (e: NodeJS.ErrnoException) =>
        resolve(up.reusedSocket && (e.code === 'ECONNRESET' || e.code === 'EPIPE') ? 'stale-connection' : 'unreachable'),
      );
      if (req.method === 'GET' || req.method === 'HEAD') up.end();
      else up.end(body);
    }
  }

  private async control(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (!this.authorised(req)) return json(res, 401, { code: 'Unauthorized', message: 'the router control API needs its bearer token' });
    if (path === '/_kmod/router/routes' && req.method === 'GET')
      return json(res, 200, { environment: this.environment, ...this.table.spec, version: this.table.version });
    if (path === '/_kmod/router/stats' && req.method === 'GET') return json(res, 200, { environment: this.environment, ...this.stats });
    if (path === '/_kmod/router/routes' && req.method === 'PUT') {
      // Optimistic concurrency for read-modify-write callers (one node joining while a wave sets weights).
      const ifVersion = new URL(req.url ?? '/', 'http://router').searchParams.get('ifVersion');
      if (ifVersion !== null && !/^\d{1,15}$/.test(ifVersion)) return json(res, 400, { code: 'BadRequest', message: 'ifVersion is a table version (digits)' });
      if (ifVersion !== null && Number(ifVersion) !== this.table.version)
        return json(res, 409, { code: 'VersionMismatch', message: `the table is at version ${this.table.version}, not ${ifVersion}` });
      let parsed: ReturnType<typeof routeTableSchema.safeParse>;
      try {
        const raw = await readAll(req, MAX_CONTROL_BODY_BYTES);
        if (!raw) return json(res, 413, { code: 'PayloadTooLarge', message: `a route table is at most ${MAX_CONTROL_BODY_BYTES} bytes` });
        parsed = routeTableSchema.safeParse(JSON.parse(raw.toString('utf8') || '{}'));
      } catch {
        return json(res, 400, { code: 'BadRequest', message: 'body is not JSON' });
      }
      if (!parsed.success)
        return json(res, 400, { code: 'BadRequest', message: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') });
      const version = this.setRoutes(parsed.data);
      return json(res, 200, { environment: this.environment, version });
    }
    return json(res, 404, { code: 'NotFound', message: `no route ${req.method} ${path}` });
  }
}

/** The whole body, or undefined past `limit` bytes (the rest is not read). */
async function readAll(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limit) return undefined;
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    // The rest of a refused body is never read: the connection cannot carry another request (as nginx does for 413).
    ...(status === 413 ? { connection: 'close' } : {}),
  });
  res.end(text);
}
