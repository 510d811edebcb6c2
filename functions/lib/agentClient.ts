/** Orchestrator side of the agent protocol: signed requests, timeouts, the SSRF guard. */
import { checkAgentAddress } from '../domain/ssrf.ts';
import {
  signRequest,
  type DeployRequest,
  type HealthReport,
  type MetricsReport,
  type ModuleOperationResult,
  type RollbackRequest,
  type SmokeTestReport,
} from '../agent/protocol.ts';
import { config } from './config.ts';
import { agentKeys } from './secrets.ts';
import type { NodeRecord } from './nodes.ts';

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

async function call<T>(node: Pick<NodeRecord, 'nodeId' | 'address'>, method: 'GET' | 'POST', path: string, payload?: unknown): Promise<T> {
  const guard = checkAgentAddress(node.address, config.agentAllowedHosts());
  if (!guard.ok) throw new AgentCallError(node.nodeId, 'AddressRefused', `refused to call node ${node.nodeId}: ${guard.reason}`);
  const body = payload === undefined ? '' : JSON.stringify(payload);
  const [key] = await agentKeys();
  // Agents may sit under a path (several agents behind one host): keep it.
  const url = new URL(guard.url.href.replace(/\/$/, '') + path);
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      body: method === 'POST' ? body : undefined,
      headers: { 'content-type': 'application/json', ...signRequest(key, method, url.pathname + url.search, body) },
      redirect: 'manual', // an agent never redirects; following one would defeat the allowlist
      signal: AbortSignal.timeout(config.agentTimeoutMs()),
    });
  } catch (e) {
    const reason = (e as Error).name === 'TimeoutError' ? `did not answer within ${config.agentTimeoutMs()} ms` : (e as Error).message;
    throw new AgentCallError(node.nodeId, 'Unreachable', `node ${node.nodeId} is unreachable: ${reason}`);
  }
  if (res.status >= 300 && res.status < 400)
    throw new AgentCallError(node.nodeId, 'RedirectRefused', `node ${node.nodeId} answered with a redirect, which is refused`);
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new AgentCallError(node.nodeId, 'BadResponse', `node ${node.nodeId} answered HTTP ${res.status} without JSON`);
  }
  if (!res.ok) {
    const err = json as { code?: string; message?: string };
    throw new AgentCallError(node.nodeId, err.code ?? `HTTP${res.status}`, `node ${node.nodeId}: ${err.message ?? `HTTP ${res.status}`}`);
  }
  return json as T;
}

export const agentClient = {
  deploy: (node: NodeRecord, module: string, req: DeployRequest) => call<ModuleOperationResult>(node, 'POST', `/v1/modules/${module}/deploy`, req),
  rollback: (node: NodeRecord, module: string, req: RollbackRequest) => call<ModuleOperationResult>(node, 'POST', `/v1/modules/${module}/rollback`, req),
  health: (node: Pick<NodeRecord, 'nodeId' | 'address'>) => call<HealthReport>(node, 'GET', '/v1/health'),
  metrics: (node: Pick<NodeRecord, 'nodeId' | 'address'>) => call<MetricsReport>(node, 'GET', '/v1/metrics'),
  smokeTest: (node: NodeRecord, module: string) => call<SmokeTestReport>(node, 'POST', `/v1/modules/${module}/smoke-test`, {}),
};

/** Run `fn` over items with at most `limit` in flight. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<PromiseSettledResult<R>[]> {
  const results: PromiseSettledResult<R>[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        results[i] = { status: 'fulfilled', value: await fn(items[i]) };
      } catch (reason) {
        results[i] = { status: 'rejected', reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
