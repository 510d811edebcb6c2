/**
 * The node agent protocol, version 1: HTTP + JSON, every request HMAC-SHA256 signed.
 *
 *   POST /v1/modules/{name}/deploy    { deploymentId, version, artifactUrl, sha256,       idempotent per deploymentId
 *                                       manifest?, signature?, certificateChain? }
 *   POST /v1/modules/{name}/rollback  { deploymentId, toVersion }                       idempotent per deploymentId
 *   POST /v1/modules/{name}/smoke-test → SmokeTestReport (the module's own self-test)
 *   GET  /v1/modules                  → { modules: { [name]: ModuleState } }
 *   GET  /v1/health                   → HealthReport
 *   GET  /v1/metrics                  → MetricsReport (optionally with `window`: request/error counts
 *                                       and a latency histogram since the previous report)
 *
 * Signature: base64url(HMAC-SHA256(secret, METHOD \n PATH \n TIMESTAMP \n SHA256HEX(BODY))) in
 * `x-agent-signature`, with `x-agent-key-id` and `x-agent-timestamp` (ms since epoch). An agent
 * holds several keys (current and previous), so keys rotate without downtime. An agent refuses a
 * signature it has already accepted while the timestamp is inside the clock window (ReplayCache),
 * so a captured request cannot be played again.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { ModuleSignature } from '../domain/signature.ts';

export const AGENT_PROTOCOL_VERSION = '1';
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;

export interface AgentKey {
  id: string;
  secret: string;
}

export interface ModuleState {
  version: string;
  previousVersion?: string;
  loadedAt: string;
  lastDeploymentId?: string;
}

export interface DeployRequest {
  deploymentId: string;
  version: string;
  artifactUrl: string;
  sha256: string;
  /**
   * The signed manifest, its signature and the signer's certificate chain, as registered. Optional
   * for older orchestrators; an agent that holds its own trust roots refuses a deploy without them,
   * so a compromised orchestrator cannot make it load an unsigned module.
   */
  manifest?: unknown;
  signature?: ModuleSignature;
  certificateChain?: string[];
}

export interface RollbackRequest {
  deploymentId: string;
  /** The version to go back to; null unloads the module (it was not on the node before). */
  toVersion: string | null;
}

export interface ModuleOperationResult {
  nodeId: string;
  module: string;
  /** null when the module is no longer loaded. */
  version: string | null;
  previousVersion?: string;
  /** True when the agent had already applied this deployment id (a retry). */
  replayed: boolean;
}

export interface MetricsReport {
  nodeId: string;
  at: string;
  cpuPercent: number;
  memoryPercent: number;
  latencyMs: number;
  errorRatePercent: number;
  requestsPerSecond: number;
  /** Real hosts only: CPU/memory of the modules' own processes (`module`) or of the whole host. */
  source?: 'module' | 'host';
  /** Real hosts only: latency, error rate and requests/s from the modules' metrics, or none (all 0). */
  trafficSource?: 'module' | 'none';
  /**
   * Per-request detail of the window the numbers above cover (since the agent's previous report,
   * or since the module process started), for the statistical canary judge. Optional: agents that
   * do not send it are judged on their averages (docs/adr/0022-statistical-canary-judge.md).
   */
  window?: MetricsWindow;
}

export interface MetricsWindow {
  seconds: number;
  requests: number;
  errors: number;
  /** Request latencies: counts per bucket (upper bounds in ms, one more count for +Inf), not cumulative. */
  latencyHistogram?: { boundsMs: number[]; counts: number[] };
}

export interface SmokeTestReport {
  nodeId: string;
  module: string;
  version: string | null;
  passed: boolean;
  checks: { name: string; passed: boolean; detail: string }[];
}

export interface HealthReport {
  nodeId: string;
  protocolVersion: string;
  status: 'healthy' | 'unhealthy';
  reasons: string[];
  at: string;
  uptimeSeconds: number;
  modules: Record<string, ModuleState>;
  metrics: MetricsReport;
}

export function bodyDigest(body: string): string {
  return createHash('sha256').update(body).digest('hex');
}

let lastTimestamp = 0;

/**
 * Milliseconds since the epoch, strictly increasing within this process: two identical calls signed
 * in the same millisecond (a quick retry, two polls of one node) still get distinct signatures, so
 * the receiver's replay cache never takes the second for a replay. Only a sustained rate above 1,000
 * signatures per second moves the clock ahead of real time, and by far less than the clock window.
 */
function uniqueTimestamp(): number {
  lastTimestamp = Math.max(Date.now(), lastTimestamp + 1);
  return lastTimestamp;
}

export function signRequest(key: AgentKey, method: string, path: string, body: string, now = uniqueTimestamp()): Record<string, string> {
  const timestamp = String(now);
  const mac = createHmac('sha256', key.secret)
    .update(`${method.toUpperCase()}\n${path}\n${timestamp}\n${bodyDigest(body)}`)
    .digest('base64url');
  return { 'x-agent-key-id': key.id, 'x-agent-timestamp': timestamp, 'x-agent-signature': mac, 'x-agent-protocol': AGENT_PROTOCOL_VERSION };
}

export type VerifyResult = { ok: true; keyId: string } | { ok: false; reason: string };

/**
 * Signatures already accepted, kept while their timestamp is inside the clock window: an exact
 * replay (same key, method, path, timestamp and body, hence the same signature) is refused, and
 * anything older is refused by the timestamp check anyway, so entries can go once they leave it.
 * Bounded: when full of live entries it refuses new requests rather than forget one that is live
 * (only a holder of the key can fill it, and 100,000 signed calls in 10 minutes is no orchestrator).
 */
export class ReplayCache {
  /** `keyId:signature` → the request's timestamp; insertion order is roughly timestamp order. */
  private readonly seen = new Map<string, number>();

  constructor(private readonly maxEntries = 100_000) {}

  get size(): number {
    return this.seen.size;
  }

  /** Records the signature, unless it was recorded before (`replayed`) or there is no room for it (`full`). */
  claim(keyId: string, signature: string, timestamp: number, now: number): 'fresh' | 'replayed' | 'full' {
    const id = `${keyId}:${signature}`;
    if (this.seen.has(id)) return 'replayed';
    this.forgetExpired(now, this.seen.size >= this.maxEntries);
    if (this.seen.size >= this.maxEntries) return 'full';
    this.seen.set(id, timestamp);
    return 'fresh';
  }

  /** Drops entries whose timestamp has left the window: from the oldest on, or all of them when `everywhere`. */
  private forgetExpired(now: number, everywhere: boolean): void {
    for (const [id, ts] of this.seen) {
      if (Math.abs(now - ts) > MAX_CLOCK_SKEW_MS) this.seen.delete(id);
      else if (!everywhere) return;
    }
  }
}

export function verifyRequest(
  keys: AgentKey[],
  method: string,
  path: string,
  body: string,
  headers: Record<string, string | string[] | undefined>,
  now = Date.now(),
  /** The receiver's record of accepted signatures; without one, replays inside the window pass. */
  replays?: ReplayCache,
): VerifyResult {
  const keyId = headers['x-agent-key-id'];
  const timestamp = headers['x-agent-timestamp'];
  const signature = headers['x-agent-signature'];
  if (typeof keyId !== 'string' || typeof timestamp !== 'string' || typeof signature !== 'string') {
    return { ok: false, reason: 'missing signature headers' };
  }
  const key = keys.find((k) => k.id === keyId);
  if (!key) return { ok: false, reason: `unknown key id ${keyId}` };
  const ts = Number(timestamp);
  if (!Number.isFinite(ts) || Math.abs(now - ts) > MAX_CLOCK_SKEW_MS) return { ok: false, reason: 'timestamp outside the allowed clock skew' };
  const expected = Buffer.from(signRequest(key, method, path, body, ts)['x-agent-signature']);
  const given = Buffer.from(signature);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return { ok: false, reason: 'bad signature' };
  // Only a verified signature is recorded: forged ones can neither fill the cache nor block a real one.
  const claim = replays?.claim(keyId, signature, ts, now);
  if (claim === 'replayed') return { ok: false, reason: 'replayed request (this signature was already used)' };
  if (claim === 'full') return { ok: false, reason: 'too many requests within the clock window (replay cache full)' };
  return { ok: true, keyId };
}

/** W3C Trace Context `traceparent`, version 00 (the orchestrator sends one with each call; unsigned, it decides nothing). */
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/;

/** The trace id of a received `traceparent`, or undefined when it is absent or malformed (all-zero ids are invalid). */
export function parseTraceparent(header: string | string[] | undefined): string | undefined {
  const m = TRACEPARENT.exec(Array.isArray(header) ? (header[0] ?? '') : (header ?? ''));
  if (!m || /^0+$/.test(m[1]) || /^0+$/.test(m[2])) return undefined;
  return m[1];
}

/**
 * The API request's correlation id (`x-correlation-id`) the orchestrator sends with each call of a
 * deployment, as the orchestrator accepts it (functions/lib/traceContext.ts CORRELATION_ID):
 * unsigned, it only goes on the agent's log line, and nothing that could forge a log field passes.
 */
export const CORRELATION_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/** The correlation id of a received `x-correlation-id`, or undefined when it is absent or malformed. */
export function parseCorrelationId(header: string | string[] | undefined): string | undefined {
  const v = Array.isArray(header) ? header[0] : header;
  return v !== undefined && CORRELATION_ID_PATTERN.test(v) ? v : undefined;
}
