/**
 * The post-deploy check an operator runs after `cdk deploy` (or against LocalStack or the local
 * cloud): fast, read-only, one line per check, exit status 0 only when nothing failed.
 *
 *   npm run smoke -- --api <ApiUrl> --token <access token>
 *   npm run smoke -- --api <ApiUrl> --token-url https://<domain>.auth.<region>.amazoncognito.com/oauth2/token \
 *       --client-id <id> --client-secret <secret> [--scope kmod/read]
 *   npm run smoke -- --api http://127.0.0.1:3000 --token-file .local/cloud.json [--role Admin]
 *   npm run smoke -- --api <ApiUrl> --issuer-key .localstack/identity/signing-key.json [--role Admin]
 *
 * Without a token option the KMOD_TARGET_* variables (scripts/lib/target.ts) give the token of
 * --role (default Viewer). With an Admin token it also reports the approvers' email subscriptions.
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { apiBase, fetchToken, type TargetRole, TARGET_ROLES, tokenSourceFor, type TokenSource } from './lib/target.ts';

export type Outcome = 'PASS' | 'FAIL' | 'WARN' | 'SKIP';
export interface CheckResult {
  outcome: Outcome;
  name: string;
  detail: string;
}

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  /** The JSON body's fields (empty when the body is not a JSON object). */
  json: JsonObject;
  ms: number;
}
type JsonObject = Record<string, unknown> & { items?: unknown[] };

const TIMEOUT_MS = 10_000;
/** A well-formed token no issuer signed: the API must refuse it. */
const FORGED =
  'eyJhbGciOiJSUzI1NiIsImtpZCI6ImZvcmdlZCJ9.eyJzdWIiOiJzbW9rZSIsInRva2VuX3VzZSI6ImFjY2VzcyIsImNsaWVudF9pZCI6InNtb2tlIiwiZXhwIjo0MTAyNDQ0ODAwfQ.c2lnbmF0dXJl';

async function call(base: string, path: string, token?: string): Promise<Answer> {
  const started = Date.now();
  const r = await fetch(`${base}${path}`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const text = await r.text();
  let json: JsonObject = {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) json = parsed as JsonObject;
  } catch {
    /* not JSON */
  }
  return { status: r.status, headers: r.headers, text, json, ms: Date.now() - started };
}

/** The roles a token claims (groups, or the scopes of a service client); read only to choose checks. */
function claimedRoles(token: string): string[] {
  try {
    const p = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8')) as { 'cognito:groups'?: string[]; scope?: string };
    return [...(p['cognito:groups'] ?? []), ...(String(p.scope ?? '').includes('kmod/deploy') ? ['Deployer'] : [])];
  } catch {
    return [];
  }
}

/** Runs every check in order; a check that throws (network, timeout) is a FAIL with the reason. */
export async function runSmoke(apiUrl: string, token: string): Promise<CheckResult[]> {
  const base = apiBase(apiUrl);
  const results: CheckResult[] = [];
  const check = async (name: string, fn: () => Promise<Omit<CheckResult, 'name'>>) => {
    try {
      results.push({ name, ...(await fn()) });
    } catch (e) {
      results.push({ name, outcome: 'FAIL', detail: (e as Error).message });
    }
  };
  const expect = (ok: boolean, pass: string, fail: string): Omit<CheckResult, 'name'> => ({ outcome: ok ? 'PASS' : 'FAIL', detail: ok ? pass : fail });
  const got = (a: Answer) => `HTTP ${a.status} in ${a.ms} ms: ${a.text.slice(0, 160)}`;

  await check('health', async () => {
    const a = await call(base, '/health');
    return expect(a.status === 200 && a.json.status === 'ok', `200 in ${a.ms} ms, status ok`, got(a));
  });
  await check('security headers', async () => {
    const a = await call(base, '/health');
    const missing = ['strict-transport-security', 'x-content-type-options'].filter((h) => !a.headers.get(h));
    return expect(missing.length === 0, 'Strict-Transport-Security and X-Content-Type-Options present', `missing ${missing.join(', ')}`);
  });
  await check('metrics', async () => {
    const a = await call(base, '/metrics');
    const nodes = [...a.text.matchAll(/^kmod_nodes\{environment="(\w+)"\} (\d+)$/gm)].map((m) => `${m[1]} ${m[2]}`);
    return expect(a.status === 200 && nodes.length === 4, `Prometheus text, nodes: ${nodes.join(', ')}`, got(a));
  });
  await check('no token refused', async () => {
    const a = await call(base, '/api/v1/clusters');
    return expect(a.status === 401 && a.json.code === 'Unauthorized', '401 Unauthorized', got(a));
  });
  await check('forged token refused', async () => {
    const a = await call(base, '/api/v1/clusters', FORGED);
    return expect(a.status === 401, '401 for a token no trusted issuer signed', got(a));
  });
  await check('token accepted', async () => {
    const a = await call(base, '/api/v1/clusters', token);
    const items = (a.json.items ?? []) as { environment: string; nodeCount: number }[];
    return expect(a.status === 200 && items.length === 4, `clusters: ${items.map((c) => `${c.environment} ${c.nodeCount} nodes`).join(', ')}`, got(a));
  });
  await check('deployments', async () => {
    const a = await call(base, '/api/v1/deployments?limit=5', token);
    const latest = a.json.items?.[0] as { executionId: string; status: string; moduleName: string; version: string } | undefined;
    return expect(
      a.status === 200 && Array.isArray(a.json.items),
      latest ? `latest ${latest.executionId} ${latest.moduleName}@${latest.version} ${latest.status}` : 'none yet',
      got(a),
    );
  });
  await check('modules', async () => {
    const a = await call(base, '/api/v1/modules', token);
    const items = (a.json.items ?? []) as { moduleName: string; versions: string[] }[];
    return expect(a.status === 200, items.length ? items.map((m) => `${m.moduleName} (${m.versions.length})`).join(', ') : 'none registered yet', got(a));
  });
  await check('approvals', async () => {
    const a = await call(base, '/api/v1/approvals/pending', token);
    return expect(a.status === 200, `${a.json.items?.length ?? 0} pending`, got(a));
  });
  await check('email subscriptions', async () => {
    if (!claimedRoles(token).includes('Admin')) return { outcome: 'SKIP', detail: 'needs an Admin token (--role Admin)' };
    const a = await call(base, '/api/v1/admin/subscriptions', token);
    if (a.status !== 200) return { outcome: 'FAIL', detail: got(a) };
    const subs = a.json.subscriptions as { topic: string; email: string; state: string }[];
    const left = a.json.unsubscribable as { userId: string; reason: string }[];
    const notConfirmed = subs.filter((s) => s.state !== 'confirmed');
    const approvals = subs.filter((s) => s.topic === 'approvals');
    const summary = `${approvals.length} approver subscription(s), ${subs.length - approvals.length} outcome subscription(s)`;
    if (!notConfirmed.length && !left.length) return { outcome: 'PASS', detail: `${summary}, all confirmed` };
    return {
      outcome: 'WARN',
      detail: [
        summary,
        ...notConfirmed.map((s) => `${s.topic} ${s.email}: ${s.state}`),
        ...left.map((u) => `approver ${u.userId} gets no mail: ${u.reason}`),
      ].join('; '),
    };
  });
  return results;
}

export function report(apiUrl: string, results: CheckResult[]): { text: string; failed: number } {
  const width = Math.max(...results.map((r) => r.name.length));
  const count = (o: Outcome) => results.filter((r) => r.outcome === o).length;
  const lines = [
    `kmod smoke check against ${apiBase(apiUrl)}`,
    ...results.map((r) => `${r.outcome.padEnd(4)}  ${r.name.padEnd(width)}  ${r.detail}`),
    `${count('PASS')} passed, ${count('FAIL')} failed, ${count('WARN')} warning${count('WARN') === 1 ? '' : 's'}, ${count('SKIP')} skipped`,
  ];
  return { text: lines.join('\n'), failed: count('FAIL') };
}

const USAGE = `usage: npm run smoke -- --api <ApiUrl> (--token <jwt> | --token-file <cloud.json> | --issuer-key <signing-key.json>
                          | --token-url <url> --client-id <id> --client-secret <secret> [--scope <scope>]) [--role Viewer]
       (without a token option: the KMOD_TARGET_* variables, see scripts/lib/target.ts)`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      api: { type: 'string' },
      token: { type: 'string' },
      'token-file': { type: 'string' },
      'issuer-key': { type: 'string' },
      'token-url': { type: 'string' },
      'client-id': { type: 'string' },
      'client-secret': { type: 'string' },
      scope: { type: 'string' },
      role: { type: 'string', default: 'Viewer' },
      help: { type: 'boolean', default: false },
    },
  });
  const api = values.api ?? process.env.KMOD_TARGET_URL;
  if (values.help || !api) {
    console.log(USAGE);
    return values.help ? 0 : 2;
  }
  const role = values.role as TargetRole;
  if (!TARGET_ROLES.includes(role)) {
    console.error(`--role must be one of ${TARGET_ROLES.join(', ')}`);
    return 2;
  }
  const source: TokenSource | undefined = values.token
    ? { kind: 'token', token: values.token }
    : values['token-file']
      ? { kind: 'cloud-file', file: values['token-file'] }
      : values['issuer-key']
        ? { kind: 'issuer-key', keyFile: values['issuer-key'] }
        : values['token-url'] && values['client-id'] && values['client-secret']
          ? {
              kind: 'client-credentials',
              tokenUrl: values['token-url'],
              clientId: values['client-id'],
              clientSecret: values['client-secret'],
              scope: values.scope,
            }
          : tokenSourceFor(role);
  if (!source) {
    console.error(`no token: pass one of the token options\n${USAGE}`);
    return 2;
  }
  let token: string;
  try {
    token = await fetchToken(source, role);
  } catch (e) {
    console.log(`kmod smoke check against ${apiBase(api)}\nFAIL  token  ${(e as Error).message}\n0 passed, 1 failed, 0 warnings, 0 skipped`);
    return 1;
  }
  const { text, failed } = report(api, await runSmoke(api, token));
  console.log(text);
  return failed ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = await main();
