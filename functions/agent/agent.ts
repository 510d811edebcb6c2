/**
 * The reference node agent: hot-swaps module versions on request, reports health and metrics.
 * Run it on a host with `scripts/agent.ts`; the local cloud's simulated fleet runs this same code,
 * one HTTP server per node, with `simulation` turned on (fault injection and synthetic metrics).
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { loadavg, totalmem, freemem, cpus } from 'node:os';
import {
  AGENT_PROTOCOL_VERSION,
  verifyRequest,
  type AgentKey,
  type DeployRequest,
  type HealthReport,
  type MetricsReport,
  type ModuleOperationResult,
  type ModuleState,
  type RollbackRequest,
  type SmokeTestReport,
} from './protocol.ts';

export interface Faults {
  /** Loading fails: for every version (`true`) or for the versions listed. */
  failLoad?: boolean | string[];
  /** The node reports unhealthy once it has loaded a new version (until rolled back). */
  unhealthyAfterLoad?: boolean;
  /** Added to the synthetic metrics once a new version is loaded (absolute points / ms). */
  degrade?: Partial<Record<'errorRatePercent' | 'latencyMs' | 'cpuPercent' | 'memoryPercent', number>>;
  /** The agent accepts connections but never answers. */
  unresponsive?: boolean;
  /** The module's self-test (blue-green smoke test) fails. */
  failSmokeTest?: boolean;
}

export interface AgentOptions {
  nodeId: string;
  keys: () => AgentKey[];
  /** Where the agent keeps its module state across restarts. */
  stateFile?: string;
  /** Synthetic metrics and fault injection (the simulated fleet). */
  simulation?: boolean;
  /** Modules the node runs before any deployment (first start only). */
  initialModules?: Record<string, string>;
  /** Loads verified module bytes (scripts/agent.ts stores them under --modules-dir); none in the simulation. */
  loader?: (module: string, version: string, bytes: Buffer) => Promise<void>;
  /** Path prefix when several agents share one HTTP host (e.g. `/nodes/prod-0001`). */
  basePath?: string;
  /** Fetches an artifact (default: global fetch). */
  fetchArtifact?: (url: string) => Promise<Buffer>;
  /** Content-addressed artifact cache (sha256 → bytes), e.g. shared by the agents of one host. */
  artifactCache?: Map<string, Buffer>;
}

interface PersistedState {
  modules: Record<string, ModuleState>;
  /** deploymentId:module → result, for idempotent replays. */
  applied: Record<string, ModuleOperationResult>;
  faults: Faults;
  /** Module versions deployed since the agent came up clean; used by degrade/unhealthy faults. */
  changedModules: string[];
}

const MAX_BODY = 64 * 1024;

export class NodeAgent {
  private state: PersistedState;
  private server?: Server;
  private readonly started = Date.now();
  private readonly pending = new Set<ServerResponse>();

  constructor(private readonly opts: AgentOptions) {
    this.state = this.load();
  }

  get nodeId(): string {
    return this.opts.nodeId;
  }

  get modules(): Record<string, ModuleState> {
    return structuredClone(this.state.modules);
  }

  setFaults(faults: Faults): void {
    this.state.faults = { ...faults };
    this.persist();
  }

  get faults(): Faults {
    return { ...this.state.faults };
  }

  private load(): PersistedState {
    if (this.opts.stateFile && existsSync(this.opts.stateFile)) {
      return JSON.parse(readFileSync(this.opts.stateFile, 'utf8')) as PersistedState;
    }
    const at = new Date().toISOString();
    const modules = Object.fromEntries(Object.entries(this.opts.initialModules ?? {}).map(([m, v]) => [m, { version: v, loadedAt: at }]));
    const state: PersistedState = { modules, applied: {}, faults: {}, changedModules: [] };
    this.state = state;
    this.persist();
    return state;
  }

  private persist(): void {
    if (!this.opts.stateFile) return;
    mkdirSync(dirname(this.opts.stateFile), { recursive: true });
    const tmp = `${this.opts.stateFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.state));
    renameSync(tmp, this.opts.stateFile); // atomic: a crash never leaves half a state file
  }

  async deploy(module: string, req: DeployRequest): Promise<ModuleOperationResult> {
    const replay = this.state.applied[`${req.deploymentId}:${module}:deploy`];
    if (replay) return { ...replay, replayed: true };
    const failLoad = this.state.faults.failLoad;
    if (failLoad === true || (Array.isArray(failLoad) && failLoad.includes(req.version))) {
      throw new AgentFailure(500, 'LoadFailed', `module ${module}@${req.version} failed to load on ${this.nodeId}`);
    }
    const cached = this.opts.artifactCache?.get(req.sha256);
    const bytes = cached ?? (await (this.opts.fetchArtifact ?? defaultFetch)(req.artifactUrl));
    const digest = createHash('sha256').update(bytes).digest('hex');
    if (digest === req.sha256 && !cached) this.opts.artifactCache?.set(digest, bytes);
    if (digest !== req.sha256) {
      throw new AgentFailure(422, 'DigestMismatch', `artifact digest ${digest} does not match the expected ${req.sha256}`);
    }
    await this.opts.loader?.(module, req.version, bytes);
    const previousVersion = this.state.modules[module]?.version;
    this.state.modules[module] = { version: req.version, previousVersion, loadedAt: new Date().toISOString(), lastDeploymentId: req.deploymentId };
    if (!this.state.changedModules.includes(module)) this.state.changedModules.push(module);
    const result: ModuleOperationResult = { nodeId: this.nodeId, module, version: req.version, previousVersion, replayed: false };
    this.state.applied[`${req.deploymentId}:${module}:deploy`] = result;
    this.persist();
    return result;
  }

  rollback(module: string, req: RollbackRequest): ModuleOperationResult {
    const key = `${req.deploymentId}:${module}:rollback`;
    const replay = this.state.applied[key];
    if (replay) return { ...replay, replayed: true };
    const current = this.state.modules[module]?.version;
    if (req.toVersion === null) delete this.state.modules[module];
    else
      this.state.modules[module] = { version: req.toVersion, previousVersion: current, loadedAt: new Date().toISOString(), lastDeploymentId: req.deploymentId };
    // Back on a known-good version: the injected post-load faults no longer apply to it.
    this.state.changedModules = this.state.changedModules.filter((m) => m !== module);
    const result: ModuleOperationResult = { nodeId: this.nodeId, module, version: req.toVersion, previousVersion: current, replayed: false };
    this.state.applied[key] = result;
    this.persist();
    return result;
  }

  smokeTest(module: string): SmokeTestReport {
    const state = this.state.modules[module];
    const checks = [
      {
        name: 'module-loaded',
        passed: state !== undefined,
        detail: state ? `${module}@${state.version} loaded at ${state.loadedAt}` : `${module} is not loaded`,
      },
      {
        name: 'self-test',
        passed: !(this.opts.simulation && this.state.faults.failSmokeTest),
        detail: this.opts.simulation && this.state.faults.failSmokeTest ? 'self-test returned exit code 3: request handler crashed' : 'self-test passed',
      },
    ];
    return { nodeId: this.nodeId, module, version: state?.version ?? null, passed: checks.every((c) => c.passed), checks };
  }

  metrics(): MetricsReport {
    const at = new Date().toISOString();
    if (!this.opts.simulation) {
      const cores = cpus().length || 1;
      return {
        nodeId: this.nodeId,
        at,
        cpuPercent: round(Math.min(100, (loadavg()[0] / cores) * 100)),
        memoryPercent: round((1 - freemem() / totalmem()) * 100),
        latencyMs: 0,
        errorRatePercent: 0,
        requestsPerSecond: 0,
      };
    }
    const jitter = (base: number, spread: number) => base + (Math.random() * 2 - 1) * spread;
    const d = this.state.changedModules.length > 0 ? (this.state.faults.degrade ?? {}) : {};
    return {
      nodeId: this.nodeId,
      at,
      cpuPercent: round(clamp(jitter(25, 3) + (d.cpuPercent ?? 0))),
      memoryPercent: round(clamp(jitter(40, 3) + (d.memoryPercent ?? 0))),
      latencyMs: round(Math.max(0, jitter(20, 2) + (d.latencyMs ?? 0))),
      errorRatePercent: round(clamp(jitter(0.5, 0.2) + (d.errorRatePercent ?? 0))),
      requestsPerSecond: round(Math.max(0, jitter(100, 5))),
    };
  }

  health(): HealthReport {
    const metrics = this.metrics();
    const reasons: string[] = [];
    if (this.opts.simulation && this.state.faults.unhealthyAfterLoad && this.state.changedModules.length > 0) {
      reasons.push(`module ${this.state.changedModules.join(', ')} crashed after loading`);
    }
    return {
      nodeId: this.nodeId,
      protocolVersion: AGENT_PROTOCOL_VERSION,
      status: reasons.length ? 'unhealthy' : 'healthy',
      reasons,
      at: metrics.at,
      uptimeSeconds: Math.round((Date.now() - this.started) / 1000),
      modules: this.modules,
      metrics,
    };
  }

  async listen(port = 0, host = '127.0.0.1'): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(port, host, resolve));
    const addr = this.server.address();
    if (!addr || typeof addr === 'string') throw new Error('agent has no TCP address');
    return `http://${host}:${addr.port}`;
  }

  async close(): Promise<void> {
    for (const res of this.pending) res.destroy();
    this.pending.clear();
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    this.server = undefined;
  }

  /** Serve one request (also used by a host that multiplexes several agents). */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const body = await readBody(req);
      const path = req.url ?? '/';
      const verdict = verifyRequest(this.opts.keys(), req.method ?? 'GET', path, body, req.headers);
      if (!verdict.ok) throw new AgentFailure(401, 'Unauthorized', verdict.reason);
      if (this.opts.simulation && this.state.faults.unresponsive && !path.includes('/v1/simulation/')) {
        this.pending.add(res); // never answered: the caller's timeout is what ends the call
        return;
      }
      const base = this.opts.basePath ?? '';
      if (!path.startsWith(base)) throw new AgentFailure(404, 'NotFound', `no agent at ${path}`);
      send(res, 200, await this.route(req.method ?? 'GET', path.slice(base.length) || '/', body));
    } catch (e) {
      if (e instanceof AgentFailure) send(res, e.status, { code: e.code, message: e.message });
      else send(res, 500, { code: 'InternalError', message: (e as Error).message });
    }
  }

  private async route(method: string, path: string, body: string): Promise<unknown> {
    const url = new URL(path, 'http://agent');
    const smoke = /^\/v1\/modules\/([a-z][a-z0-9-]{1,62})\/smoke-test$/.exec(url.pathname);
    if (method === 'POST' && smoke) return this.smokeTest(smoke[1]);
    const op = /^\/v1\/modules\/([a-z][a-z0-9-]{1,62})\/(deploy|rollback)$/.exec(url.pathname);
    if (method === 'POST' && op) {
      const payload = parseJson(body) as Record<string, unknown>;
      if (op[2] === 'deploy') {
        const req = payload as unknown as DeployRequest;
        if (![req.deploymentId, req.version, req.artifactUrl, req.sha256].every((v) => typeof v === 'string' && v.length > 0)) {
          throw new AgentFailure(400, 'BadRequest', 'deploy needs deploymentId, version, artifactUrl and sha256');
        }
        return this.deploy(op[1], req);
      }
      const req = payload as unknown as RollbackRequest;
      if (typeof req.deploymentId !== 'string' || (typeof req.toVersion !== 'string' && req.toVersion !== null)) {
        throw new AgentFailure(400, 'BadRequest', 'rollback needs deploymentId and toVersion');
      }
      return this.rollback(op[1], req);
    }
    if (method === 'GET' && url.pathname === '/v1/modules') return { nodeId: this.nodeId, modules: this.modules };
    if (method === 'GET' && url.pathname === '/v1/health') return this.health();
    if (method === 'GET' && url.pathname === '/v1/metrics') return this.metrics();
    if (this.opts.simulation && url.pathname === '/v1/simulation/faults') {
      if (method === 'PUT') this.setFaults(parseJson(body) as Faults);
      if (method === 'PUT' || method === 'GET') return { nodeId: this.nodeId, faults: this.faults };
    }
    throw new AgentFailure(404, 'NotFound', `no route ${method} ${url.pathname}`);
  }
}

export class AgentFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const round = (n: number) => Math.round(n * 100) / 100;
const clamp = (n: number) => Math.min(100, Math.max(0, n));

async function defaultFetch(url: string): Promise<Buffer> {
  const r = await fetch(url, { redirect: 'error' });
  if (!r.ok) throw new AgentFailure(502, 'ArtifactUnavailable', `artifact download failed with HTTP ${r.status}`);
  return Buffer.from(await r.arrayBuffer());
}

function parseJson(body: string): unknown {
  try {
    return JSON.parse(body || '{}');
  } catch {
    throw new AgentFailure(400, 'BadRequest', 'body is not JSON');
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new AgentFailure(413, 'TooLarge', 'request body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'x-agent-protocol': AGENT_PROTOCOL_VERSION });
  res.end(text);
}
