/**
 * Agent side of enrolment and heartbeats: join with a token, keep the node's own credentials in
 * `<data-dir>/credentials.json` (0600), send signed heartbeats (the protocol's HMAC scheme,
 * agent → orchestrator, with the node's own key), and take the key changes their answers carry
 * (docs/adr/0012-node-key-rotation.md): a new key is stored before it is used, and an old one is
 * dropped only once the orchestrator no longer honours it.
 */
import { closeSync, existsSync, fchmodSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Converger } from './convergence.ts';
import { signRequest, type AgentKey, type HealthReport, type ModuleState } from './protocol.ts';

export interface NodeCredentials {
  apiUrl: string;
  nodeId: string;
  environment: string;
  /** The node's keys: the first signs heartbeats; all of them verify the orchestrator's calls. */
  keys: AgentKey[];
  /** keys[0], also written for agents from before key rotation (they read only this field). */
  key: AgentKey;
  enrolledAt: string;
  /** `dial-out`: the node has no address and keeps a WebSocket open to `wsUrl` (absent: inbound HTTP). */
  transport?: 'http' | 'dial-out';
  /** Dial-out nodes: the orchestrator's WebSocket URL, as answered at enrolment. */
  wsUrl?: string;
}

export const credentialsFile = (dataDir: string) => join(dataDir, 'credentials.json');

/** The file as written by this or an older agent (a single `key`): always with `keys`, `key` = keys[0]. */
export function readCredentials(dataDir: string): NodeCredentials | undefined {
  const file = credentialsFile(dataDir);
  if (!existsSync(file)) return undefined;
  const raw = JSON.parse(readFileSync(file, 'utf8')) as Omit<NodeCredentials, 'keys'> & { keys?: AgentKey[] };
  const keys = raw.keys?.length ? raw.keys : [raw.key];
  return { ...raw, keys, key: keys[0] };
}

/**
 * Written owner-only and atomically, and flushed (file and directory) before it returns: a crash
 * or power loss never leaves a half-written key, nor a key in use that the disk does not hold.
 */
export function writeCredentials(dataDir: string, c: NodeCredentials): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = credentialsFile(dataDir);
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, `${JSON.stringify({ ...c, key: c.keys[0] }, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodOwnerOnly(tmp);
  renameSync(tmp, file);
  const dir = openSync(dataDir, 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

/** The mode given to open() is masked by the umask (and an existing temp file keeps its own); this is not. */
function chmodOwnerOnly(file: string): void {
  const fd = openSync(file, 'r');
  try {
    fchmodSync(fd, 0o600);
  } finally {
    closeSync(fd);
  }
}

/** What a heartbeat answer says about the node's keys (lib/nodeKeys.ts HeartbeatKeyAnswer). */
export interface KeyAnswer {
  credentials?: { keyId: string; secret: string };
  acceptedKeyIds?: string[];
}

/**
 * The node's keys after an accepted heartbeat's answer, or undefined when nothing changes. A
 * delivered key goes first (it signs from the next heartbeat on); keys the orchestrator no longer
 * honours are dropped, but never the signing key, nor anything when the answer lists no keys
 * (an orchestrator from before key rotation).
 */
export function keysAfterAnswer(keys: readonly AgentKey[], answer: KeyAnswer): AgentKey[] | undefined {
  let next = [...keys];
  const given = answer.credentials;
  if (given && typeof given.keyId === 'string' && typeof given.secret === 'string' && next[0].id !== given.keyId)
    next = [{ id: given.keyId, secret: given.secret }, ...next.filter((k) => k.id !== given.keyId)];
  if (Array.isArray(answer.acceptedKeyIds)) {
    const accepted = new Set(answer.acceptedKeyIds);
    next = next.filter((k, i) => i === 0 || accepted.has(k.id));
  }
  const same = next.length === keys.length && next.every((k, i) => k.id === keys[i].id);
  return same ? undefined : next;
}

/** The agent's credentials, kept on disk first and in memory second. */
export class CredentialStore {
  constructor(
    private readonly dataDir: string,
    private value: NodeCredentials,
  ) {}

  get current(): NodeCredentials {
    return this.value;
  }

  /** Every key the node holds: what orchestrator requests may be signed with. */
  readonly keys = (): AgentKey[] => this.value.keys;

  /** Persist, then use: if the write throws, the agent goes on with the keys it had. */
  replaceKeys(keys: AgentKey[]): void {
    const next = { ...this.value, keys, key: keys[0] };
    writeCredentials(this.dataDir, next);
    this.value = next;
  }
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
  /** Inbound agents: where the orchestrator calls them. Absent: a dial-out agent. */
  address?: string;
  heartbeatSeconds: number;
  modules: Record<string, ModuleState>;
  /** Where the host's workload answers requests: a traffic router sends the environment's requests there. */
  workloadUrl?: string;
}): Promise<NodeCredentials> {
  const transport = opts.address === undefined ? 'dial-out' : 'http';
  const body = JSON.stringify({
    token: opts.token,
    transport,
    address: opts.address,
    heartbeatSeconds: opts.heartbeatSeconds,
    modules: opts.modules,
    workloadUrl: opts.workloadUrl,
  });
  const r = await postJson(`${apiBase(opts.apiUrl)}/api/v1/enrol`, body);
  if (r.status !== 201) throw new Error(`enrolment refused (HTTP ${r.status} ${String(r.json.code ?? '')}): ${String(r.json.message ?? '')}`);
  const j = r.json as { nodeId: string; environment: string; wsUrl?: string; credentials: { keyId: string; secret: string } };
  const key = { id: j.credentials.keyId, secret: j.credentials.secret };
  return {
    apiUrl: opts.apiUrl,
    nodeId: j.nodeId,
    environment: j.environment,
    keys: [key],
    key,
    enrolledAt: new Date().toISOString(),
    ...(transport === 'dial-out' ? { transport, wsUrl: j.wsUrl } : {}),
  };
}

export async function sendHeartbeat(
  c: NodeCredentials,
  heartbeatSeconds: number,
  /** Inbound agents only (a dial-out node has no address). */
  address: string | undefined,
  health: HealthReport,
  extra: Record<string, unknown> = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  const path = `/api/v1/nodes/${c.nodeId}/heartbeat`;
  const body = JSON.stringify({ heartbeatSeconds, address, health, ...extra });
  return postJson(`${apiBase(c.apiUrl)}${path}`, body, signRequest(c.keys[0], 'POST', path, body));
}

/**
 * Heartbeat every `seconds` until stopped; failures are logged and retried at the next beat. One
 * beat at a time (a slow answer delays the next, never overlaps it: an overlapping older beat
 * would be refused as a replay). Key changes in an answer are stored before the next beat. With a
 * converger, the answer's convergence commands run in the background (the converger skips those
 * already running), and a beat follows at once when they changed something, so the orchestrator
 * sees it without waiting a whole interval.
 */
export function startHeartbeats(
  store: CredentialStore,
  seconds: number,
  address: string | undefined,
  health: () => HealthReport,
  log: (line: string) => void,
  converger?: Converger,
  /** The workload endpoint, sent with every beat (it may change between starts). */
  workloadUrl?: string,
): () => void {
  let refusedBefore = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const beat = async () => {
    try {
      const failed = converger?.failed ?? [];
      const r = await sendHeartbeat(store.current, seconds, address, health(), {
        ...(workloadUrl ? { workloadUrl } : {}),
        ...(failed.length ? { convergence: { failed } } : {}),
      });
      if (r.status === 200) {
        refusedBefore = false;
        takeKeyChanges(store, r.json as KeyAnswer, log);
        if (converger)
          void converger.run(r.json.converge).then((news) => {
            if (news) beatSoon();
          });
      } else if (!refusedBefore || r.status !== 401)
        log(
          `heartbeat refused (HTTP ${r.status}): ${String(r.json.message ?? '')}${r.status === 401 ? ' (decommissioned? enrol again with a new token)' : ''}`,
        );
      refusedBefore = r.status === 401;
    } catch (e) {
      log(`heartbeat failed: ${(e as Error).message}`);
    }
  };
  let inFlight = false;
  let again = false;
  const loop = async () => {
    inFlight = true;
    const started = Date.now();
    await beat();
    inFlight = false;
    const wait = again ? 0 : Math.max(0, seconds * 1000 - (Date.now() - started));
    again = false;
    if (!stopped) timer = setTimeout(() => void loop(), wait);
  };
  /** The next beat now, or right after the one in flight (never two at once). */
  const beatSoon = () => {
    if (stopped) return;
    if (inFlight) again = true;
    else {
      clearTimeout(timer);
      void loop();
    }
  };
  void loop();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

function takeKeyChanges(store: CredentialStore, answer: KeyAnswer, log: (line: string) => void): void {
  const before = store.current.keys;
  const keys = keysAfterAnswer(before, answer);
  if (!keys) return;
  try {
    store.replaceKeys(keys);
  } catch (e) {
    // Not stored, so not used: the orchestrator hands the key over again in the next answer.
    log(`could not store the node's new keys, keeping the old ones: ${(e as Error).message}`);
    return;
  }
  if (keys[0].id !== before[0].id) log(`received key ${keys[0].id} from the orchestrator; signing with it from the next heartbeat`);
  const dropped = before.filter((k) => !keys.some((n) => n.id === k.id)).map((k) => k.id);
  if (dropped.length) log(`dropped key${dropped.length > 1 ? 's' : ''} ${dropped.join(', ')}: no longer honoured by the orchestrator`);
}
