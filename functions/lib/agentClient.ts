/**
 * Orchestrator side of the agent protocol: signed requests, timeouts, the SSRF guard. The
 * transport follows the node record: HTTP to the node's address, or, for a dial-out node, the
 * same signed request over the WebSocket the agent keeps open (functions/lib/dialOut.ts). Callers
 * (the state machines' tasks, the cluster view) never know which.
 */
import { checkAgentAddress } from '../domain/ssrf.ts';
import { nodeSigningKey } from '../domain/nodeCredentials.ts';
import {
  signRequest,
  type AgentKey,
  type DeployRequest,
  type HealthReport,
  type MetricsReport,
  type ModuleOperationResult,
  type RollbackRequest,
  type SmokeTestReport,
} from '../agent/protocol.ts';
import { config } from './config.ts';
import { callOverConnection } from './dialOut.ts';
import { findNode } from './membership.ts';
import { agentKeys } from './secrets.ts';
import { isDialOut, type NodeRecord } from './nodes.ts';
import { CLOUDWATCH_METRICS } from '../domain/cloudwatchMetrics.ts';
import { cloudwatchMetrics, MetricUnit } from './emf.ts';
import { traceHeaders } from './traceContext.ts';

export class AgentCallError extends Error {
  constructor(
    readonly nodeId: string,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'AgentCallError';
  }
}

/** What calling a node needs; planning passes its node records through as PlanNodes, credential included. */
export type AgentTarget = Pick<NodeRecord, 'nodeId' | 'address'> &
  Partial<Pick<NodeRecord, 'credential' | 'decommissionedAt' | 'environment' | 'transport' | 'connection'>>;

/** An enrolled node's own key; the fleet-wide key set's signing key for nodes that never enrolled. */
async function signingKey(node: AgentTarget): Promise<AgentKey> {
  const keys = await agentKeys();
  if (!node.credential) return keys[0];
  try {
    return nodeSigningKey(node.credential, node.nodeId, keys);
  } catch (e) {
    throw new AgentCallError(node.nodeId, 'CredentialUnavailable', `cannot sign for node ${node.nodeId}: ${(e as Error).message}`);
  }
}

async function call<T>(node: AgentTarget, method: 'GET' | 'POST', path: string, payload?: unknown): Promise<T> {
  if (node.decommissionedAt) throw new AgentCallError(node.nodeId, 'Decommissioned', `node ${node.nodeId} is decommissioned and is never called`);
  const body = payload === undefined ? '' : JSON.stringify(payload);
  const started = performance.now();
  let answer: { status: number; json: unknown };
  try {
    answer = isDialOut(node) ? await overConnection(node, method, path, body) : await overHttp(node, method, path, body);
  } catch (e) {
    cloudwatchMetrics().addMetric(CLOUDWATCH_METRICS.agentCallErrors, MetricUnit.Count, 1);
    throw e;
  } finally {
    cloudwatchMetrics().addMetric(CLOUDWATCH_METRICS.agentCallLatency, MetricUnit.Milliseconds, Math.round(performance.now() - started));
  }
  const { status, json } = answer;
  if (status >= 400) cloudwatchMetrics().addMetric(CLOUDWATCH_METRICS.agentCallErrors, MetricUnit.Count, 1);
  if (status >= 300 && status < 400) throw new AgentCallError(node.nodeId, 'RedirectRefused', `node ${node.nodeId} answered with a redirect, which is refused`);
  if (status < 200 || status >= 300) {
    const err = (json ?? {}) as { code?: string; message?: string };
    throw new AgentCallError(node.nodeId, err.code ?? `HTTP${status}`, `node ${node.nodeId}: ${err.message ?? `HTTP ${status}`}`);
  }
  return json as T;
}

async function overHttp(node: AgentTarget, method: 'GET' | 'POST', path: string, body: string): Promise<{ status: number; json: unknown }> {
  const guard = checkAgentAddress(node.address, config.agentAllowedHosts());
  if (!guard.ok) throw new AgentCallError(node.nodeId, 'AddressRefused', `refused to call node ${node.nodeId}: ${guard.reason}`);
  const key = await signingKey(node);
  // Agents may sit under a path (several agents behind one host): keep it.
  const url = new URL(guard.url.href.replace(/\/$/, '') + path);
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      body: method === 'POST' ? body : undefined,
      // traceparent (W3C) and the API request's x-correlation-id let the agent's log lines be found from the
      // deployment's trace and logs; they are not signed and decide nothing.
      headers: { 'content-type': 'application/json', ...traceHeaders(), ...signRequest(key, method, url.pathname + url.search, body) },
      redirect: 'manual', // an agent never redirects; following one would defeat the allowlist
      signal: AbortSignal.timeout(config.agentTimeoutMs()),
    });
  } catch (e) {
    const reason = (e as Error).name === 'TimeoutError' ? `did not answer within ${config.agentTimeoutMs()} ms` : (e as Error).message;
    throw new AgentCallError(node.nodeId, 'Unreachable', `node ${node.nodeId} is unreachable: ${reason}`);
  }
  if (res.status >= 300 && res.status < 400) return { status: res.status, json: undefined };
  const text = await res.text();
  try {
    return { status: res.status, json: JSON.parse(text) };
  } catch {
    throw new AgentCallError(node.nodeId, 'BadResponse', `node ${node.nodeId} answered HTTP ${res.status} without JSON`);
  }
}

/** A dial-out node: the same signed request, over its WebSocket; retried on a new connection until the timeout. */
async function overConnection(node: AgentTarget, method: 'GET' | 'POST', path: string, body: string): Promise<{ status: number; json: unknown }> {
  const environment = node.environment ?? (await findNode(node.nodeId))?.environment;
  if (!environment) throw new AgentCallError(node.nodeId, 'Unreachable', `node ${node.nodeId} is not registered`);
  const key = await signingKey(node);
  const timeoutMs = config.agentTimeoutMs();
  const outcome = await callOverConnection(
    {
      nodeId: node.nodeId,
      environment,
      method,
      path,
      body,
      sign: () => ({ ...traceHeaders(), ...signRequest(key, method, path, body) }),
      connectionHint: node.connection?.connectionId,
    },
    { timeoutMs, pollMs: config.agentReplyPollMs(), recheckMs: 1000 },
  );
  if (outcome.ok) return { status: outcome.reply.status, json: outcome.reply.body };
  const reason =
    outcome.reason === 'not-connected'
      ? `is not connected: a dial-out node gets commands over its WebSocket, and it had none open within ${timeoutMs} ms`
      : `did not answer over its WebSocket within ${timeoutMs} ms (sent ${outcome.posts} time${outcome.posts === 1 ? '' : 's'})`;
  throw new AgentCallError(node.nodeId, 'Unreachable', `node ${node.nodeId} ${reason}`);
}

export const agentClient = {
  deploy: (node: NodeRecord, module: string, req: DeployRequest) => call<ModuleOperationResult>(node, 'POST', `/v1/modules/${module}/deploy`, req),
  rollback: (node: NodeRecord, module: string, req: RollbackRequest) => call<ModuleOperationResult>(node, 'POST', `/v1/modules/${module}/rollback`, req),
  health: (node: AgentTarget) => call<HealthReport>(node, 'GET', '/v1/health'),
  metrics: (node: AgentTarget) => call<MetricsReport>(node, 'GET', '/v1/metrics'),
  smokeTest: (node: NodeRecord, module: string) => call<SmokeTestReport>(node, 'POST', `/v1/modules/${module}/smoke-test`, {}),
};

// Kept importable from here, where the task handlers have always taken it.
export { mapLimit } from './concurrency.ts';
