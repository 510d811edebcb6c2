import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { api } from './harness.ts';
import { startLocalCloud, type LocalCloud } from '../../localcloud/cloud.ts';

let cloud: LocalCloud;
const WINDOW = 4;

const EDGE_LIMIT = 300;

// The default limits (10 deployment requests per user per window, 60 metrics; per address, the edge's 1000),
// with the one-minute window shrunk to a few seconds so recovery can be observed. The edge limit
// (the web ACL, every request counted) is lowered from 1000 so that a burst of junk requests
// crosses it within its minute even on a slow machine.
beforeAll(async () => {
  cloud = await startLocalCloud({
    dataDir: mkdtempSync(join(tmpdir(), 'kmod-rl-')),
    fresh: true,
    apiPort: 0,
    env: { RATE_LIMIT_WINDOW_SECONDS: String(WINDOW), CORS_ALLOWED_ORIGINS: 'https://console.example.com', WAF_RATE_LIMIT_PER_ADDRESS: String(EDGE_LIMIT) },
  });
});
afterAll(async () => {
  await cloud?.stop();
});

/** Start right after a window boundary, so a burst falls in one window. */
async function freshWindow() {
  const ms = WINDOW * 1000;
  await new Promise((r) => setTimeout(r, ms - (Date.now() % ms) + 50));
}

// Invalid bodies: every request counts against the limit, none creates a deployment.
const attempt = (token: string) => api(cloud, 'POST', '/api/v1/deployments', { token, body: { moduleName: 'demo-kernel' } });

/** The audit events of one category, through the table's byCategory index. */
async function auditByCategory(category: string) {
  return cloud.ddb.send(
    new QueryCommand({
      TableName: cloud.tableNames.audit,
      IndexName: 'byCategory',
      KeyConditionExpression: 'category = :c',
      ExpressionAttributeValues: { ':c': category },
    }),
  );
}

describe('rate limits', () => {
  it('lets 10 concurrent deployment requests per user through, answers the rest 429 with Retry-After, and recovers after the window', async () => {
    await freshWindow();
    const rs = await Promise.all(Array.from({ length: 15 }, () => attempt(cloud.tokens.Deployer)));
    const statuses = rs.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 400)).toHaveLength(10);
    expect(statuses.filter((s) => s === 429)).toHaveLength(5);
    const limited = rs.find((r) => r.status === 429)!;
    expect(limited.body.code).toBe('TooManyRequests');
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(Number(limited.headers.get('retry-after'))).toBeLessThanOrEqual(WINDOW);
    expect(limited.headers.get('ratelimit-limit')).toBe('10');
    expect(limited.headers.get('ratelimit-remaining')).toBe('0');
    const ok = rs.find((r) => r.status === 400)!;
    expect(ok.headers.get('ratelimit-limit')).toBe('10');
    // Another user has a budget of their own.
    expect((await attempt(cloud.tokens.Admin)).status).toBe(400);
    await freshWindow();
    expect((await attempt(cloud.tokens.Deployer)).status).toBe(400);
  });

  it('applies a limit an Admin changes, within seconds, without a restart; the change is audited', async () => {
    expect((await api(cloud, 'PUT', '/api/v1/admin/rate-limits', { token: cloud.tokens.Deployer, body: {} })).status).toBe(403);
    const current = await api(cloud, 'GET', '/api/v1/admin/rate-limits', { token: cloud.tokens.Admin });
    expect(current.body).toEqual({ windowSeconds: WINDOW, deploymentCreatePerUser: 10, metricsPerUser: 60 });
    const bad = await api(cloud, 'PUT', '/api/v1/admin/rate-limits', { token: cloud.tokens.Admin, body: { ...current.body, metricsPerUser: -1 } });
    expect(bad.status).toBe(400);
    // The per-address limit moved to the edge: a client still sending it is told so, and nothing changes.
    const moved = await api(cloud, 'PUT', '/api/v1/admin/rate-limits', { token: cloud.tokens.Admin, body: { ...current.body, perIp: 5 } });
    expect(moved.status).toBe(400);
    expect(moved.body.message).toContain('per-address limit is counted at the edge');
    expect((await api(cloud, 'GET', '/api/v1/admin/rate-limits', { token: cloud.tokens.Admin })).body).toEqual(current.body);
    const put = await api(cloud, 'PUT', '/api/v1/admin/rate-limits', { token: cloud.tokens.Admin, body: { ...current.body, deploymentCreatePerUser: 2 } });
    expect(put.status).toBe(200);
    // Containers re-read the settings within 3 s.
    await new Promise((r) => setTimeout(r, 3100));
    await freshWindow();
    const rs = [];
    for (let i = 0; i < 3; i++) rs.push((await attempt(cloud.tokens.Deployer)).status);
    expect(rs).toEqual([400, 400, 429]);
    const audit = await auditByCategory('config');
    expect(audit.Items?.find((i) => i.action === 'rate-limits.changed')).toMatchObject({
      actor: 'dev-admin',
      details: { after: { deploymentCreatePerUser: 2 } },
    });
    const security = await auditByCategory('security');
    const actions = (security.Items ?? []).map((i) => i.action);
    expect(actions).toContain('rate-limit.exceeded');
    expect(actions).toContain('access.denied');
  });

  it('audits authentication failures', async () => {
    expect((await api(cloud, 'GET', '/api/v1/clusters', { token: 'not-a-token' })).status).toBe(401);
    const security = await auditByCategory('security');
    expect(security.Items?.find((i) => i.action === 'auth.failed')).toMatchObject({
      actor: 'ip:127.0.0.1',
      details: { method: 'GET', path: '/api/v1/clusters' },
    });
  });

  it('sends security headers on every answer', async () => {
    const r = await fetch(`${cloud.apiUrl}/health`);
    expect(r.headers.get('strict-transport-security')).toMatch(/max-age=\d+/);
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    // Frame denial and the CSP apply to HTML answers (the approval pages); see approvals.test.ts.
    expect(r.headers.get('referrer-policy')).toBe('no-referrer');
  });

  it('answers CORS only for allowlisted origins', async () => {
    const allowed = await fetch(`${cloud.apiUrl}/api/v1/clusters`, {
      headers: { origin: 'https://console.example.com', authorization: `Bearer ${cloud.tokens.Viewer}` },
    });
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://console.example.com');
    const other = await fetch(`${cloud.apiUrl}/api/v1/clusters`, {
      headers: { origin: 'https://evil.example', authorization: `Bearer ${cloud.tokens.Viewer}` },
    });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });
  // Last in this file: it leaves 127.0.0.1 over its edge limit for up to a minute.
  it('counts refused requests against the per-address limit (429 once over) and audits them as a handful of events, not one each (issue 15 defect 4)', async () => {
    const junkFailures = async () => {
      const items = (await auditByCategory('security')).Items ?? [];
      const junk = items.filter((i) => i.action === 'auth.failed' && i.actor === 'ip:127.0.0.1');
      return { items: items.length, refusals: junk.reduce((n, i) => n + Number(i.count ?? 1), 0) };
    };
    const before = await junkFailures();
    const junk = () => api(cloud, 'GET', '/api/v1/clusters', { token: 'junk.junk.junk' });
    const answers: Awaited<ReturnType<typeof junk>>[] = [];
    const started = Date.now();
    for (let i = 0; i < 1100; i += 25) answers.push(...(await Promise.all(Array.from({ length: 25 }, junk))));
    const minutes = Math.floor((Date.now() - started) / 60_000);
    const unauthorized = answers.filter((r) => r.status === 401).length;
    const limited = answers.filter((r) => r.status === 429);
    expect(unauthorized + limited.length).toBe(1100);
    // At most EDGE_LIMIT requests per address in any minute get past the edge (this file's earlier ones count too).
    expect(unauthorized).toBeGreaterThan(0);
    expect(unauthorized).toBeLessThanOrEqual(EDGE_LIMIT * (minutes + 1));
    expect(limited.length).toBeGreaterThanOrEqual(1100 - EDGE_LIMIT * (minutes + 1));
    expect(limited[0].body).toEqual({ code: 'TooManyRequests', message: 'too many requests from this address; retry later' });
    expect(limited[0].headers.get('retry-after')).toBe('60');
    const after = await junkFailures();
    // One event per address and window (five minutes), its count kept current; the 429s never got as far as the authorizer.
    expect(after.items - before.items).toBeGreaterThanOrEqual(0);
    expect(after.items - before.items).toBeLessThanOrEqual(2);
    expect(after.refusals - before.refusals).toBe(unauthorized);
  });
});
