/**
 * The node agent protocol, version 1: HTTP + JSON, every request HMAC-SHA256 signed.
 *
 *   POST /v1/modules/{name}/deploy    { deploymentId, version, artifactUrl, sha256 }   idempotent per deploymentId
 *   POST /v1/modules/{name}/rollback  { deploymentId, toVersion }                       idempotent per deploymentId
 *   POST /v1/modules/{name}/smoke-test → SmokeTestReport (the module's own self-test)
 *   GET  /v1/modules                  → { modules: { [name]: ModuleState } }
 *   GET  /v1/health                   → HealthReport
 *   GET  /v1/metrics                  → MetricsReport
 *
 * Signature: base64url(HMAC-SHA256(secret, METHOD \n PATH \n TIMESTAMP \n SHA256HEX(BODY))) in
 * `x-agent-signature`, with `x-agent-key-id` and `x-agent-timestamp` (ms since epoch). An agent
 * holds several keys (current and previous), so keys rotate without downtime.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

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

export function signRequest(key: AgentKey, method: string, path: string, body: string, now = Date.now()): Record<string, string> {
  const timestamp = String(now);
  const mac = createHmac('sha256', key.secret)
    .update(`${method.toUpperCase()}\n${path}\n${timestamp}\n${bodyDigest(body)}`)
    .digest('base64url');
  return { 'x-agent-key-id': key.id, 'x-agent-timestamp': timestamp, 'x-agent-signature': mac, 'x-agent-protocol': AGENT_PROTOCOL_VERSION };
}

export type VerifyResult = { ok: true; keyId: string } | { ok: false; reason: string };

export function verifyRequest(
  keys: AgentKey[],
  method: string,
  path: string,
  body: string,
  headers: Record<string, string | string[] | undefined>,
  now = Date.now(),
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
  return { ok: true, keyId };
}
