/** Starts a fresh local cloud for a test file and drives its HTTP API for real. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { expect } from 'vitest';
import { responseSchema } from '../../functions/handlers/api/responses.ts';
import { startLocalCloud, type LocalCloud, type LocalCloudOptions } from '../../localcloud/cloud.ts';

/**
 * The suites create deployments and poll far faster than people do; they run with generous rate
 * limits, at the edge (the web ACL, per address) and in the handlers (per user). test/integration/rate-limits.test.ts checks
 * the real defaults.
 */
export const SUITE_LIMITS = {
  RATE_LIMIT_DEPLOYMENTS_PER_USER: '10000',
  RATE_LIMIT_METRICS_PER_USER: '10000',
  // Directory changes (roles, disabling) apply at once in the suites; users.test.ts checks a real TTL.
  DIRECTORY_CACHE_SECONDS: '0',
  WAF_RATE_LIMIT_PER_ADDRESS: '100000',
  // Canary stabilisation in seconds rather than minutes (never skipped): at least 1 s, 3 polls 1 s apart, at most 10 s.
  STABILISE_MIN_SECONDS: '1',
  STABILISE_POLL_SECONDS: '1',
  STABILISE_MAX_SECONDS: '10',
  // The suite judges dozens of canary waves on the simulated fleet's unseeded traffic. At the
  // product's confidence (0.99: about 0.3 % false positives a wave, docs/adr/0022) a run would
  // now and then roll back a healthy canary somewhere (router.test.ts did: p = 0.0016); at 0.9999
  // a hundred times less often. The degraded canaries the suite injects are caught far below it;
  // canary-judge.test.ts judges at the default.
  CANARY_CONFIDENCE: '0.9999',
};

export async function startTestCloud(opts: LocalCloudOptions = {}): Promise<LocalCloud> {
  return startLocalCloud({ dataDir: mkdtempSync(join(tmpdir(), 'kmod-it-')), fresh: true, apiPort: 0, ...opts, env: { ...SUITE_LIMITS, ...opts.env } });
}

export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

export async function api<T = any>(
  cloud: Pick<LocalCloud, 'apiUrl'>,
  method: string,
  path: string,
  opts: { token?: string; body?: unknown; rawBody?: string; headers?: Record<string, string> } = {},
): Promise<ApiResponse<T>> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body: string | undefined = opts.rawBody;
  if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['content-type'] ??= 'application/json';
  }
  const r = await fetch(`${cloud.apiUrl}${path}`, { method, headers, body });
  const text = await r.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: r.status, headers: r.headers, body: parsed as T };
}

/**
 * The answer has the status and body the OpenAPI document gives for `route` (docs/adr/0031-response-schemas.md):
 * the body parsed with the route's strict zod schema, so an undocumented field fails as a changed type does.
 */
export function expectDocumented(route: string, r: ApiResponse, status = 200): void {
  expect(r.status, `${route}: ${JSON.stringify(r.body)}`).toBe(status);
  const parsed = responseSchema(route, status).safeParse(r.body);
  expect(parsed.success ? [] : parsed.error.issues, `${route} answered ${JSON.stringify(r.body).slice(0, 2000)}`).toEqual([]);
}

const FINISHED = ['Succeeded', 'Failed', 'RolledBack', 'Cancelled'];

/** Poll the API until the deployment reaches one of `statuses` (default: any finished status). */
export async function waitForDeployment(cloud: Pick<LocalCloud, 'apiUrl' | 'tokens'>, executionId: string, statuses = FINISHED, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await api(cloud, 'GET', `/api/v1/deployments/${executionId}`, { token: cloud.tokens.Viewer });
    if (r.status === 200 && statuses.includes(r.body.status)) return r.body;
    if (Date.now() > deadline) throw new Error(`deployment ${executionId} still ${r.body?.status} after ${timeoutMs} ms`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

/**
 * Every item of every table, for proving that a rejected request changed nothing. Two things every
 * request is meant to leave behind are set apart: its rate-limit counter, and the security audit
 * event of a refused call (authentication failures and denials are audited on purpose).
 */
export async function snapshotTables(cloud: LocalCloud): Promise<Record<string, unknown[]>> {
  const out: Record<string, unknown[]> = {};
  for (const [key, name] of Object.entries(cloud.tableNames)) {
    // Events are derived from the other tables' change streams, asynchronously (docs/adr/0028-live-events.md): a
    // change made before the first snapshot may be numbered after it.
    if (key === 'rateLimits' || key === 'events') continue;
    const items: unknown[] = [];
    let cursor: Record<string, unknown> | undefined;
    do {
      const r = await cloud.ddb.send(new ScanCommand({ TableName: name, ExclusiveStartKey: cursor, ConsistentRead: true }));
      items.push(...(r.Items ?? []));
      cursor = r.LastEvaluatedKey;
    } while (cursor);
    // Security events and their chains' heads (docs/adr/0032: a head is `#chain|<subject>|<category>`).
    const security = (i: { category?: string; subject?: string }) =>
      i.category === 'security' || (i.subject?.startsWith('#chain|') && i.subject.endsWith('|security'));
    const kept = key === 'audit' ? items.filter((i) => !security(i as { category?: string; subject?: string })) : items;
    out[key] = kept.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  }
  return out;
}

/** What each agent of an environment really runs (asked of the agents, not the tables). */
export function agentVersions(cloud: LocalCloud, prefix: string, module = 'demo-kernel'): Record<string, string | undefined> {
  return Object.fromEntries(
    [...cloud.fleet.nodes.values()].filter((n) => n.agent.nodeId.startsWith(`${prefix}-`)).map((n) => [n.agent.nodeId, n.agent.modules[module]?.version]),
  );
}

/**
 * Wait for the deployment to finish, approving every gate it stops at (as the dev Approver), the
 * way an on-call approver would.
 */
export async function waitApprovingGates(cloud: LocalCloud, executionId: string, timeoutMs = 90_000) {
  for (;;) {
    const d = await waitForDeployment(cloud, executionId, [...FINISHED, 'WaitingForApproval'], timeoutMs);
    if (d.status !== 'WaitingForApproval') return d;
    const r = await api(cloud, 'POST', `/api/v1/approvals/deployments/${executionId}/approve`, {
      token: cloud.tokens.Approver,
      body: { reason: 'looks good' },
    });
    if (r.status !== 200) throw new Error(`approval failed: ${r.status} ${JSON.stringify(r.body)}`);
    await waitForDeployment(cloud, executionId, [...FINISHED, 'Running'], timeoutMs);
  }
}

/** The DynamoDB Local (Java) processes of a data dir: a stopped cloud must leave none behind. */
export function javaProcessesFor(dataDir: string): string[] {
  try {
    return execFileSync('pgrep', ['-f', join(dataDir, 'dynamodb')], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .filter(Boolean);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}
