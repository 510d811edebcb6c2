/**
 * `GET /api/v1/audit` without a filter (issue 11 item 6): every event, newest first (or oldest
 * first), paged by a cursor, checked page by page against the table itself.
 */
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HEAD_SK } from '../../functions/domain/auditChain.ts';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { api, startTestCloud, waitForDeployment } from './harness.ts';

let cloud: LocalCloud;

beforeAll(async () => {
  cloud = await startTestCloud({ fleet: { Development: 2, QA: 1, Staging: 2, Production: 2 } });
  // Events of several categories: a deployment (deployment, stage, node), a config change, denials (security).
  const r = await api(cloud, 'POST', '/api/v1/deployments', {
    token: cloud.tokens.Deployer,
    body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Development' },
  });
  expect(r.status).toBe(202);
  await waitForDeployment(cloud, r.body.executionId);
  expect((await api(cloud, 'POST', '/api/v1/enrolment-tokens', { token: cloud.tokens.Admin, body: { environment: 'QA' } })).status).toBe(201);
  expect((await api(cloud, 'GET', '/api/v1/admin/users', { token: cloud.tokens.Viewer })).status).toBe(403);
}, 180_000);
afterAll(async () => {
  await cloud?.stop();
});

/** Every audit event as the table holds it, by time (the chains' head items are not events, docs/adr/0032). */
async function everything(): Promise<{ sk: string; category: string }[]> {
  const items: { sk: string; category: string }[] = [];
  let cursor: Record<string, unknown> | undefined;
  do {
    const r = await cloud.ddb.send(new ScanCommand({ TableName: cloud.tableNames.audit, ExclusiveStartKey: cursor, ConsistentRead: true }));
    items.push(...((r.Items ?? []) as { sk: string; category: string }[]).filter((i) => i.sk !== HEAD_SK));
    cursor = r.LastEvaluatedKey;
  } while (cursor);
  return items.sort((a, b) => a.sk.localeCompare(b.sk));
}

async function pages(query: string, token = cloud.tokens.Admin): Promise<{ sks: string[]; pageSizes: number[] }> {
  const sks: string[] = [];
  const pageSizes: number[] = [];
  let cursor: string | null = null;
  do {
    const r: { status: number; body: any } = await api(cloud, 'GET', `/api/v1/audit?${query}${cursor ? `&cursor=${cursor}` : ''}`, { token });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    sks.push(...r.body.items.map((i: { sk: string }) => i.sk));
    pageSizes.push(r.body.items.length);
    cursor = r.body.nextCursor;
  } while (cursor && pageSizes.length < 200);
  return { sks, pageSizes };
}

describe('the audit trail without a filter', () => {
  it('lists every event newest first, page by page, none twice and none missed', async () => {
    const all = await everything();
    expect(new Set(all.map((e) => e.category)).size).toBeGreaterThanOrEqual(4);
    const first = await api(cloud, 'GET', '/api/v1/audit?limit=5', { token: cloud.tokens.Admin });
    expect(first.status).toBe(200);
    expect(first.body.items).toHaveLength(5);
    // As stored, TTL and chain fields included: an export of them verifies offline (docs/adr/0032).
    expect(first.body.items[0]).toHaveProperty('expiresAt');
    expect(first.body.items[0]).toHaveProperty('hash');
    // Events written after the scan (this request's own, for instance) are newer: compare what the scan saw.
    const { sks, pageSizes } = await pages('limit=7');
    const seen = new Set(all.map((e) => e.sk));
    expect(sks.filter((sk) => seen.has(sk))).toEqual(all.map((e) => e.sk).reverse());
    expect(new Set(sks).size).toBe(sks.length);
    expect(pageSizes.slice(0, -1).every((n) => n === 7)).toBe(true);
  });

  it('lists oldest first on request, and within a time range', async () => {
    const all = await everything();
    const { sks } = await pages('limit=9&order=oldest');
    expect(sks.slice(0, all.length)).toEqual(all.map((e) => e.sk));
    const from = all[Math.floor(all.length / 3)].sk.slice(0, 24);
    const to = all[Math.floor((2 * all.length) / 3)].sk.slice(0, 24);
    const inRange = all.filter((e) => e.sk >= from && e.sk <= `${to}~`).map((e) => e.sk);
    expect((await pages(`limit=4&from=${from}&to=${to}`)).sks).toEqual(inRange.reverse());
  });

  it('a filter may ask for newest first too; a bad or foreign cursor is a 400; only Admins read it', async () => {
    const oldest = await api(cloud, 'GET', '/api/v1/audit?category=stage', { token: cloud.tokens.Admin });
    const newest = await api(cloud, 'GET', '/api/v1/audit?category=stage&order=newest', { token: cloud.tokens.Admin });
    expect(newest.body.items.map((i: { sk: string }) => i.sk)).toEqual(oldest.body.items.map((i: { sk: string }) => i.sk).reverse());

    const page = await api(cloud, 'GET', '/api/v1/audit?limit=2', { token: cloud.tokens.Admin });
    const wrongOrder = await api(cloud, 'GET', `/api/v1/audit?limit=2&order=oldest&cursor=${page.body.nextCursor}`, { token: cloud.tokens.Admin });
    expect(wrongOrder.status).toBe(400);
    const forged = Buffer.from(JSON.stringify({ o: 'newest', p: { stage: { subject: 'x', sk: 'y', category: 'node' } } })).toString('base64url');
    for (const cursor of ['garbage', forged, Buffer.from('[]').toString('base64url')]) {
      const r = await api(cloud, 'GET', `/api/v1/audit?cursor=${cursor}`, { token: cloud.tokens.Admin });
      expect(r.status, cursor).toBe(400);
      expect(r.body).toMatchObject({ code: 'ValidationError', message: expect.stringMatching(/cursor/) });
    }
    expect((await api(cloud, 'GET', '/api/v1/audit?category=stage&actor=x', { token: cloud.tokens.Admin })).status).toBe(400);
    expect((await api(cloud, 'GET', '/api/v1/audit', { token: cloud.tokens.Viewer })).status).toBe(403);
    expect((await api(cloud, 'GET', '/api/v1/audit', { token: cloud.tokens.Deployer })).status).toBe(403);
  });
});
