/**
 * Agent side of enrolment and heartbeats: join with a token, keep the node's own credentials in
 * `<data-dir>/credentials.json` (0600), and send signed heartbeats (the protocol's HMAC scheme,
 * agent → orchestrator, with the node's own key).
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Converger } from './convergence.ts';
import { signRequest, type AgentKey, type HealthReport, type ModuleState } from './protocol.ts';

export interface NodeCredentials {
  apiUrl: string;
  nodeId: string;
  environment: string;
  key: AgentKey;
  enrolledAt: string;
}

export const credentialsFile = (dataDir: string) => join(dataDir, 'credentials.json');

export function readCredentials(dataDir: string): NodeCredentials | undefined {
  const file = credentialsFile(dataDir);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as NodeCredentials) : undefined;
}

/** Written owner-only and atomically: a crash never leaves a half-written key. */
export function writeCredentials(dataDir: string, c: NodeCredentials): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = credentialsFile(dataDir);
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(c, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600); // the mode option is masked by the umask; this is not
  renameSync(tmp, file);
}

async function postJson(url: string, body: string, headers: Record<string, string> = {}): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json', ...headers },
    redirect: 'error',
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = { message: text.slice(0, 200) };
  }
  return { status: res.status, json };
}

const apiBase = (apiUrl: string) => apiUrl.replace(/\/+$/, '');

export async function enrol(opts: {
  apiUrl: string;
  token: string;
  address: string;
  heartbeatSeconds: number;
  modules: Record<string, ModuleState>;
}): Promise<NodeCredentials> {
  const body = JSON.stringify({ token: opts.token, address: opts.address, heartbeatSeconds: opts.heartbeatSeconds, modules: opts.modules });
  const r = await postJson(`${apiBase(opts.apiUrl)}/api/v1/enrol`, body);
  if (r.status !== 201) throw new Error(`enrolment refused (HTTP ${r.status} ${String(r.json.code ?? '')}): ${String(r.json.message ?? '')}`);
  const j = r.json as { nodeId: string; environment: string; credentials: { keyId: string; secret: string } };
  return {
    apiUrl: opts.apiUrl,
    nodeId: j.nodeId,
    environment: j.environment,
    key: { id: j.credentials.keyId, secret: j.credentials.secret },
    enrolledAt: new Date().toISOString(),
  };
}

export async function sendHeartbeat(
  c: NodeCredentials,
  heartbeatSeconds: number,
  address: string,
  health: HealthReport,
  extra: Record<string, unknown> = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  const path = `/api/v1/nodes/${c.nodeId}/heartbeat`;
  const body = JSON.stringify({ heartbeatSeconds, address, health, ...extra });
  return postJson(`${apiBase(c.apiUrl)}${path}`, body, signRequest(c.key, 'POST', path, body));
}

/**
 * Heartbeat every `seconds` until stopped; failures are logged and retried at the next beat. Beats
 * are not held back by a slow answer: liveness is judged by their arrival. With a converger, the
 * answer's convergence commands run in the background (the converger skips those already running),
 * and a beat follows at once when they changed something, so the orchestrator sees it without waiting.
 */
export function startHeartbeats(
  c: NodeCredentials,
  seconds: number,
  address: string,
  health: () => HealthReport,
  log: (line: string) => void,
  converger?: Converger,
): () => void {
  let refusedBefore = false;
  const beat = async () => {
    try {
      const failed = converger?.failed ?? [];
      const r = await sendHeartbeat(c, seconds, address, health(), failed.length ? { convergence: { failed } } : {});
      if (r.status === 200 && converger)
        void converger.run(r.json.converge).then((news) => {
          if (news) void beat();
        });
      if (r.status === 200) refusedBefore = false;
      else if (!refusedBefore || r.status !== 401)
        log(
          `heartbeat refused (HTTP ${r.status}): ${String(r.json.message ?? '')}${r.status === 401 ? ' (decommissioned? enrol again with a new token)' : ''}`,
        );
      refusedBefore = r.status === 401;
    } catch (e) {
      log(`heartbeat failed: ${(e as Error).message}`);
    }
  };
  void beat();
  const timer = setInterval(() => void beat(), seconds * 1000);
  return () => clearInterval(timer);
}
