/**
 * The reference node agent: hot-swaps module versions on request, reports health and metrics.
 * Run it on a host with `scripts/agent.ts` (which gives it the installer, functions/agent/installer.ts,
 * as its `runtime`); the local cloud's simulated fleet runs this same code, without a runtime,
 * one HTTP server per node, with `simulation` turned on (fault injection and synthetic metrics).
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { loadavg, totalmem, freemem, cpus } from 'node:os';
import { manifestSchema, type Manifest } from '../domain/manifest.ts';
import { verifyModuleSignature, type SignatureVerdict } from '../domain/signature.ts';
import { revocationListFetcher } from '../lib/revocationLists.ts';
import type { HookResult, ModuleResourceUsage } from './installer.ts';
import type { Traffic } from './moduleMetrics.ts';
import { HEALTHY_TRAFFIC, simulateWindow } from './simulation.ts';
import {
  AGENT_PROTOCOL_VERSION,
  parseCorrelationId,
  parseTraceparent,
  ReplayCache,
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
  /**
   * Added to the synthetic metrics once a new version is loaded (absolute points / ms), and
   * `slowRequestPercent` of the requests take `slowRequestMs` longer (a regression that hits a few
   * requests hard and barely moves the averages).
   */
  degrade?: Partial<Record<'errorRatePercent' | 'latencyMs' | 'cpuPercent' | 'memoryPercent' | 'slowRequestPercent' | 'slowRequestMs', number>>;
  /**
   * `degrade` applies now, whatever version runs, not only once a new version is loaded: a node
   * going bad on its own (a noisy neighbour, a failing disk), what anomaly detection is for.
   */
  degradeNow?: boolean;
  /** The agent accepts connections but never answers. */
  unresponsive?: boolean;
  /** The module's self-test (blue-green smoke test) fails. */
  failSmokeTest?: boolean;
}

/**
 * What loads modules on a real host: functions/agent/installer.ts. The simulated fleet has none, so
 * its agents touch no module files.
 */
export interface ModuleRuntime {
  /** Settles swaps a crash interrupted; returns what each module on disk runs now. */
  recover(): Promise<Record<string, string | null>>;
  install(module: string, version: string, bytes: Buffer, manifest: Manifest | undefined): Promise<void>;
  switchTo(module: string, version: string | null): Promise<void>;
  smokeTest(module: string): Promise<HookResult>;
  health(modules: string[]): Promise<string[]>;
  resourceUsage(modules: string[]): ModuleResourceUsage | undefined;
  traffic(modules: string[]): Promise<Traffic | undefined>;
}

export interface AgentOptions {
  nodeId: string;
  keys: () => AgentKey[];
  /** Where the agent keeps its module state across restarts. */
  stateFile?: string;
  /** Synthetic metrics and fault injection (the simulated fleet). */
  simulation?: boolean;
  /** The simulation's random source (default Math.random); seeded in tests. */
  random?: () => number;
  /** Modules the node runs before any deployment (first start only). */
  initialModules?: Record<string, string>;
  /** Called with the verified bytes before the version is recorded (embedders; the host uses `runtime`). */
  loader?: (module: string, version: string, bytes: Buffer) => Promise<void>;
  /** Path prefix when several agents share one HTTP host (e.g. `/nodes/prod-0001`). */
  basePath?: string;
  /** Fetches an artifact (default: global fetch). */
  fetchArtifact?: (url: string) => Promise<Buffer>;
  /** Content-addressed artifact cache (sha256 → bytes), e.g. shared by the agents of one host. */
  artifactCache?: Map<string, Buffer>;
  /** Installs and runs modules on the host (functions/agent/installer.ts). Requires `trustRoots`. */
  runtime?: ModuleRuntime;
  /**
   * PEM roots the agent trusts for module signatures. When set, a deploy must carry the signed
   * manifest, its signature and chain, and they must verify; the orchestrator's word is not enough.
   */
  trustRoots?: string[];
  /** Signature verdicts by request content, e.g. shared by the agents of one host: verify once. */
  verdictCache?: VerdictCache;
  /**
   * CRLs (http(s) or file URLs) every signer chain is checked against; they must be readable. The
   * CRL distribution points in the certificates are read too, where they can be.
   */
  revocationLists?: string[];
  /**
   * Where the agent writes one line per module operation it serves, with the trace id of the
   * orchestrator's `traceparent` (so a deployment's trace finds the host's lines). Default: none
   * (the simulated fleet's thousands of agents stay quiet).
   */
  log?: (line: string) => void;
}

/** A verified request's verdict and parsed manifest (or why it is not valid), by request content. */
export type VerdictCache = Map<string, { verdict: SignatureVerdict; at: number; manifestJson: string; chain: string[]; manifest?: Manifest; problem?: string }>;

const sameList = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** A cached verdict is re-checked after this long (certificates expire, roots change). */
const VERDICT_TTL_MS = 3600_000;

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
  /** Per-module tail of the command queue: one command per module at a time. */
  private readonly queues = new Map<string, Promise<unknown>>();
  private recovered = false;
  /** Signatures accepted within the clock window: a captured request cannot be replayed. */
  private readonly replays = new ReplayCache();
  private readonly revocationLists: ReturnType<typeof revocationListFetcher>;

  constructor(private readonly opts: AgentOptions) {
    if (opts.runtime && !opts.trustRoots?.length) throw new Error('an agent that loads modules needs trust roots');
    this.revocationLists = revocationListFetcher(opts.revocationLists ?? []);
    this.state = this.load();
  }

  /**
   * Runs `fn` after the module's earlier commands. When the module is idle, `fn` starts at once
   * (synchronously up to its first await), so an agent without a runtime behaves as before.
   */
  private serial<T>(module: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(module);
    const run = prev ? prev.then(fn, fn) : fn();
    // Cleared in the first reaction to `run`, before the caller's await resumes: a caller that
    // issues its next command right after sees an idle module.
    const done = () => {
      if (this.queues.get(module) === tail) this.queues.delete(module);
    };
    const tail: Promise<unknown> = run.then(done, done);
    this.queues.set(module, tail);
    return run;
  }

  /** Before serving: let the runtime settle interrupted swaps, and take what is on disk as the truth. */
  async recover(): Promise<void> {
    if (this.recovered || !this.opts.runtime) return;
    this.recovered = true;
    const onDisk = await this.opts.runtime.recover();
    const at = new Date().toISOString();
    for (const [module, version] of Object.entries(onDisk)) {
      const known = this.state.modules[module];
      if (version === null) delete this.state.modules[module];
      else if (known?.version !== version) this.state.modules[module] = { version, previousVersion: known?.version, loadedAt: at };
    }
    this.persist();
  }

  get nodeId(): string {
    return this.opts.nodeId;
  }

  get modules(): Record<string, ModuleState> {
    return structuredClone(this.state.modules);
  }

  /** Whether the injected `degrade` shows: once a new version loaded, or at once with `degradeNow`. */
  private degraded(): boolean {
    return this.state.changedModules.length > 0 || this.state.faults.degradeNow === true;
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

  deploy(module: string, req: DeployRequest): Promise<ModuleOperationResult> {
    return this.serial(module, () => this.deployNow(module, req));
  }

  private async deployNow(module: string, req: DeployRequest): Promise<ModuleOperationResult> {
    const replay = this.state.applied[`${req.deploymentId}:${module}:deploy`];
    if (replay && this.runs(module, replay.version)) return { ...replay, replayed: true };
    const failLoad = this.state.faults.failLoad;
    if (failLoad === true || (Array.isArray(failLoad) && failLoad.includes(req.version))) {
      throw new AgentFailure(500, 'LoadFailed', `module ${module}@${req.version} failed to load on ${this.nodeId}`);
    }
    const manifest = this.opts.trustRoots ? await this.verifiedManifest(module, req) : undefined;
    const cached = this.opts.artifactCache?.get(req.sha256);
    const bytes = cached ?? (await (this.opts.fetchArtifact ?? defaultFetch)(req.artifactUrl));
    const digest = createHash('sha256').update(bytes).digest('hex');
    if (digest === req.sha256 && !cached) this.opts.artifactCache?.set(digest, bytes);
    if (digest !== req.sha256) {
      throw new AgentFailure(422, 'DigestMismatch', `artifact digest ${digest} does not match the expected ${req.sha256}`);
    }
    if (manifest && manifest.artifact.sizeBytes !== bytes.length) {
      throw new AgentFailure(422, 'DigestMismatch', `artifact has ${bytes.length} bytes, the manifest says ${manifest.artifact.sizeBytes}`);
    }
    await this.opts.loader?.(module, req.version, bytes);
    await this.opts.runtime?.install(module, req.version, bytes, manifest).catch(asAgentFailure);
    const previousVersion = this.state.modules[module]?.version;
    this.state.modules[module] = { version: req.version, previousVersion, loadedAt: new Date().toISOString(), lastDeploymentId: req.deploymentId };
    if (!this.state.changedModules.includes(module)) this.state.changedModules.push(module);
    const result: ModuleOperationResult = { nodeId: this.nodeId, module, version: req.version, previousVersion, replayed: false };
    this.state.applied[`${req.deploymentId}:${module}:deploy`] = result;
    this.persist();
    return result;
  }

  /**
   * The signed manifest of a deploy, verified against the agent's own roots (verdicts cached by
   * request content), and bound to the module, version and digest the deploy names.
   */
  private async verifiedManifest(module: string, req: DeployRequest): Promise<Manifest> {
    if (!req.manifest || !req.signature || !Array.isArray(req.certificateChain)) {
      throw new AgentFailure(422, 'SignatureRequired', 'this agent loads only signed modules: the deploy carries no manifest, signature and certificate chain');
    }
    // Keyed by digest and signature; a hit must also carry the very same manifest and chain, so a
    // verdict is never lent to other hooks or another signer. Cheaper than hashing every request.
    const key = `${req.sha256}:${req.signature.algorithm}:${req.signature.value}`;
    const manifestJson = JSON.stringify(req.manifest);
    let entry = this.opts.verdictCache?.get(key);
    const same = entry && entry.manifestJson === manifestJson && sameList(entry.chain, req.certificateChain) && Date.now() - entry.at <= VERDICT_TTL_MS;
    if (!entry || !same) {
      const verdict = await verifyModuleSignature(req.manifest, req.signature, req.certificateChain, {
        trustedRoots: this.opts.trustRoots!,
        revokedSerials: [],
        now: new Date(),
        revocationLists: this.revocationLists,
      });
      const parsed = manifestSchema.safeParse(req.manifest);
      entry = { verdict, at: Date.now(), manifestJson, chain: req.certificateChain, manifest: parsed.data, problem: parsed.error?.issues[0]?.message };
      this.opts.verdictCache?.set(key, entry);
    }
    if (!entry.verdict.ok) throw new AgentFailure(422, 'SignatureInvalid', `module signature refused: ${entry.verdict.reason}`);
    if (!entry.manifest) throw new AgentFailure(422, 'ManifestInvalid', `the signed manifest is not valid: ${entry.problem}`);
    const m = entry.manifest;
    if (m.name !== module || m.version !== req.version || m.artifact.sha256 !== req.sha256) {
      throw new AgentFailure(
        422,
        'ManifestMismatch',
        `the signed manifest is for ${m.name}@${m.version} (${m.artifact.sha256.slice(0, 12)}…), not ${module}@${req.version} (${req.sha256.slice(0, 12)}…)`,
      );
    }
    return m;
  }

  /**
   * A command already applied is answered from its record (a retry changes nothing) only while the
   * module still runs what it left: a node that moved off it since runs the command again, so the
   * same command id always means the same end state (a drifted node converges back, every time).
   */
  private runs(module: string, version: string | null | undefined): boolean {
    return (this.state.modules[module]?.version ?? null) === (version ?? null);
  }

  rollback(module: string, req: RollbackRequest): Promise<ModuleOperationResult> {
    return this.serial(module, () => this.rollbackNow(module, req));
  }

  private async rollbackNow(module: string, req: RollbackRequest): Promise<ModuleOperationResult> {
    const key = `${req.deploymentId}:${module}:rollback`;
    const replay = this.state.applied[key];
    if (replay && this.runs(module, replay.version)) return { ...replay, replayed: true };
    if (this.opts.runtime) await this.opts.runtime.switchTo(module, req.toVersion).catch(asAgentFailure);
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

  /** The blue-green smoke test: on a host, the module's own smokeTest hook. */
  runSmokeTest(module: string): Promise<SmokeTestReport> {
    if (!this.opts.runtime) return Promise.resolve(this.smokeTest(module));
    return this.serial(module, async () => {
      const report = this.smokeTest(module);
      if (!report.version) return report;
      const r = await this.opts.runtime!.smokeTest(module);
      report.checks[1] = { name: 'self-test', passed: r.ok, detail: r.ran ? `smokeTest hook: ${r.detail}` : 'the module declares no smokeTest hook' };
      report.passed = report.checks.every((c) => c.passed);
      return report;
    });
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
    const d = this.degraded() ? (this.state.faults.degrade ?? {}) : {};
    return {
      nodeId: this.nodeId,
      at,
      ...simulateWindow(
        {
          ...HEALTHY_TRAFFIC,
          latencyMeanMs: HEALTHY_TRAFFIC.latencyMeanMs + (d.latencyMs ?? 0),
          errorRatePercent: HEALTHY_TRAFFIC.errorRatePercent + (d.errorRatePercent ?? 0),
          cpuPercent: HEALTHY_TRAFFIC.cpuPercent + (d.cpuPercent ?? 0),
          memoryPercent: HEALTHY_TRAFFIC.memoryPercent + (d.memoryPercent ?? 0),
          slowRequestPercent: d.slowRequestPercent ?? 0,
          slowRequestMs: d.slowRequestMs ?? 0,
        },
        this.opts.random,
      ),
    };
  }

  /** Metrics as served: on a host with a runtime, the modules' own processes and traffic. */
  async readMetrics(): Promise<MetricsReport> {
    const base = this.metrics();
    if (this.opts.simulation || !this.opts.runtime) return base;
    const modules = Object.keys(this.state.modules);
    const usage = this.opts.runtime.resourceUsage(modules);
    const traffic = await this.opts.runtime.traffic(modules);
    return { ...base, ...(usage ?? {}), ...(traffic ?? {}), source: usage ? 'module' : 'host', trafficSource: traffic ? 'module' : 'none' };
  }

  /** Health as served: on a host with a runtime, including each module's healthCheck hook. */
  async checkHealth(): Promise<HealthReport> {
    const report = this.health();
    if (this.opts.simulation || !this.opts.runtime) return report;
    report.metrics = await this.readMetrics();
    report.reasons.push(...(await this.opts.runtime.health(Object.keys(this.state.modules))));
    report.status = report.reasons.length ? 'unhealthy' : 'healthy';
    return report;
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
    await this.recover();
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

  /** Serve one HTTP request (also used by a host that multiplexes several agents). */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const base = this.opts.basePath ?? '';
    if (this.opts.simulation && (req.url ?? '').startsWith(`${base}/workload`)) return this.serveWorkload(req, res);
    let answer: AgentAnswer | undefined;
    try {
      const body = await readBody(req);
      answer = await this.serve({ method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers, body });
    } catch (e) {
      answer = failureAnswer(e); // only the body read can throw here: serve() answers every failure
    }
    if (!answer) {
      this.pending.add(res); // never answered: the caller's timeout is what ends the call
      return;
    }
    send(res, answer.status, answer.body);
  }

  /**
   * The simulated node's workload (what a traffic router sends requests to): unauthenticated, as a
   * service's own port is, answering with the module versions it serves. Honours the faults a real
   * workload would show: `unresponsive` never answers, `failSmokeTest` fails the smoke probes
   * (`?probe=…`), `degrade.errorRatePercent` fails that share of requests once a new version loaded.
   */
  private serveWorkload(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    const faults = this.state.faults;
    if (faults.unresponsive) {
      this.pending.add(res);
      return;
    }
    const url = new URL(req.url ?? '/', 'http://workload');
    const probe = url.searchParams.has('probe');
    const errorRate = this.degraded() ? (faults.degrade?.errorRatePercent ?? 0) : 0;
    const modules = Object.fromEntries(Object.entries(this.state.modules).map(([m, s]) => [m, s.version]));
    if (probe && faults.failSmokeTest)
      send(res, 500, { nodeId: this.nodeId, code: 'SelfTestFailed', message: 'self-test returned exit code 3: request handler crashed' });
    else if (!probe && errorRate > 0 && Math.random() * 100 < errorRate)
      send(res, 500, { nodeId: this.nodeId, code: 'InternalError', message: 'simulated failure' });
    else send(res, 200, { nodeId: this.nodeId, modules });
  }

  /**
   * One signed request, whichever transport brought it (an inbound HTTP request, or a command
   * over a dial-out WebSocket: functions/agent/dialOut.ts): verify the signature, then route. The
   * answer is what goes back (an error as `{code, message}`); `undefined` only for the simulated
   * `unresponsive` fault, whose requests are never answered.
   */
  async serve(req: AgentRequest): Promise<AgentAnswer | undefined> {
    let signed = false;
    try {
      if (Buffer.byteLength(req.body) > MAX_BODY) throw new AgentFailure(413, 'TooLarge', 'request body too large');
      // An exact replay of a signed request is refused within the clock window (issue 15 defect 11).
      const verdict = verifyRequest(this.opts.keys(), req.method, req.path, req.body, req.headers, Date.now(), this.replays);
      if (!verdict.ok) throw new AgentFailure(401, 'Unauthorized', verdict.reason);
      signed = true;
      if (this.opts.simulation && this.state.faults.unresponsive && !req.path.includes('/v1/simulation/')) return undefined;
      const base = this.opts.basePath ?? '';
      if (!req.path.startsWith(base)) throw new AgentFailure(404, 'NotFound', `no agent at ${req.path}`);
      const answer = { status: 200, body: await this.route(req.method, req.path.slice(base.length) || '/', req.body) };
      this.logOperation(req, answer);
      return answer;
    } catch (e) {
      const answer = failureAnswer(e);
      if (signed) this.logOperation(req, answer);
      return answer;
    }
  }

  /**
   * One line for each signed module operation (not the frequent health and metrics reads): only a
   * caller holding the node's key can put a line, and so a trace id, in the host's log.
   */
  private logOperation(req: AgentRequest, answer: AgentAnswer): void {
    if (!this.opts.log || req.method !== 'POST') return;
    const trace = parseTraceparent(req.headers.traceparent);
    const correlation = parseCorrelationId(req.headers['x-correlation-id']);
    const failure = answer.status >= 400 ? ` ${(answer.body as { code?: string }).code ?? ''}` : '';
    this.opts.log(
      `${new Date().toISOString()} ${req.method} ${req.path.slice(0, 200)} → ${answer.status}${failure}${trace ? ` trace=${trace}` : ''}${correlation ? ` correlation=${correlation}` : ''}`,
    );
  }

  private async route(method: string, path: string, body: string): Promise<unknown> {
    const url = new URL(path, 'http://agent');
    const smoke = /^\/v1\/modules\/([a-z][a-z0-9-]{1,62})\/smoke-test$/.exec(url.pathname);
    if (method === 'POST' && smoke) return this.runSmokeTest(smoke[1]);
    const op = /^\/v1\/modules\/([a-z][a-z0-9-]{1,62})\/(deploy|rollback)$/.exec(url.pathname);
    if (method === 'POST' && op) {
      const payload = parseJson(body) as Record<string, unknown>;
      if (op[2] === 'deploy') {
        const req = payload as unknown as DeployRequest;
        if (![req.deploymentId, req.version, req.artifactUrl, req.sha256].every((v) => typeof v === 'string' && v.length > 0)) {
          throw new AgentFailure(400, 'BadRequest', 'deploy needs deploymentId, version, artifactUrl and sha256');
        }
        if (req.certificateChain !== undefined && !(Array.isArray(req.certificateChain) && req.certificateChain.every((c) => typeof c === 'string'))) {
          throw new AgentFailure(400, 'BadRequest', 'certificateChain must be a list of PEM strings');
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
    if (method === 'GET' && url.pathname === '/v1/health') return this.checkHealth();
    if (method === 'GET' && url.pathname === '/v1/metrics') return this.readMetrics();
    if (this.opts.simulation && url.pathname === '/v1/simulation/faults') {
      if (method === 'PUT') this.setFaults(parseJson(body) as Faults);
      if (method === 'PUT' || method === 'GET') return { nodeId: this.nodeId, faults: this.faults };
    }
    throw new AgentFailure(404, 'NotFound', `no route ${method} ${url.pathname}`);
  }
}

/** A signed request as the agent sees it, from either transport. */
export interface AgentRequest {
  method: string;
  /** The request target as signed: path (with any base path) and query string. */
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** The body exactly as signed. */
  body: string;
}

/** What the agent answers: an HTTP status and a JSON body. */
export interface AgentAnswer {
  status: number;
  body: unknown;
}

function failureAnswer(e: unknown): AgentAnswer {
  if (e instanceof AgentFailure) return { status: e.status, body: { code: e.code, message: e.message } };
  return { status: 500, body: { code: 'InternalError', message: (e as Error).message } };
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

/** Installer failures keep their status and code on the wire; anything else is an internal error. */
function asAgentFailure(e: unknown): never {
  const f = e as { status?: unknown; code?: unknown; message?: string };
  if (typeof f.status === 'number' && typeof f.code === 'string') throw new AgentFailure(f.status, f.code, f.message ?? f.code);
  if ((e as Error).name === 'ArtifactRejected') throw new AgentFailure(422, 'ArtifactRejected', (e as Error).message);
  throw e;
}

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
