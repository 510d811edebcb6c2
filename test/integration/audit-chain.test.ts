/**
 * The tamper-evident audit trail (issue 12 item 4, docs/adr/0032-tamper-evident-audit.md) on the
 * local cloud: a deployment's events verify; concurrent writers of one chain all land in order;
 * refused requests cost one chained event per window; an event edited, deleted or cut from the
 * tail directly in DynamoDB is found by GET /api/v1/audit/verify and by `kmod audit verify` on an export.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteCommand, GetCommand, QueryCommand, ScanCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HEAD_SK, headSubject } from '../../functions/domain/auditChain.ts';
import { audit } from '../../functions/lib/audit.ts';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { run } from '../../scripts/lib/kmod/program.ts';
import { api, startTestCloud, waitForDeployment } from './harness.ts';

let cloud: LocalCloud;
let executionId: string;
let started: string;
const dir = mkdtempSync(join(tmpdir(), 'kmod-audit-chain-'));
const cloudFile = join(dir, 'cloud.json');

beforeAll(async () => {
  started = new Date().toISOString();
  // One denial window for the whole run, so the flood below lands in one.
  cloud = await startTestCloud({ fleet: { Development: 2 }, cloudFile, env: { DENIAL_AUDIT_WINDOW_SECONDS: '86400' } });
  const r = await api(cloud, 'POST', '/api/v1/deployments', {
    token: cloud.tokens.Deployer,
    body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Development' },
  });
  expect(r.status).toBe(202);
  executionId = r.body.executionId;
  expect((await waitForDeployment(cloud, executionId)).status).toBe('Succeeded');
}, 180_000);
afterAll(async () => {
  await cloud?.stop();
});

const verify = async (query = '') => {
  const r = await api(cloud, 'GET', `/api/v1/audit/verify${query}`, { token: cloud.tokens.Admin });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body;
};

/** A chain's events as the table holds them, by seq. */
async function chainEvents(subject: string, category: string): Promise<Record<string, any>[]> {
  const r = await cloud.ddb.send(
    new QueryCommand({
      TableName: cloud.tableNames.audit,
      KeyConditionExpression: 'subject = :s',
      FilterExpression: 'category = :c',
      ExpressionAttributeValues: { ':s': subject, ':c': category },
      ConsistentRead: true,
    }),
  );
  return (r.Items ?? []).sort((a, b) => a.seq - b.seq);
}

const head = async (chain: string) =>
  (await cloud.ddb.send(new GetCommand({ TableName: cloud.tableNames.audit, Key: { subject: headSubject(chain), sk: HEAD_SK }, ConsistentRead: true }))).Item;

async function kmod(argv: string[]) {
  let out = '';
  let err = '';
  const code = await run(['--cloud-file', cloudFile, ...argv], { stdout: { write: (s) => void (out += s) }, stderr: { write: (s) => void (err += s) } });
  return { code, out, err };
}

describe('the audit hash chains', () => {
  it('a deployment leaves chained events that verify, through the API and offline from an export', async () => {
    const stages = await chainEvents(`deployment#${executionId}`, 'stage');
    expect(stages.length).toBeGreaterThan(2);
    expect(stages.map((e) => e.seq)).toEqual(stages.map((_, i) => i + 1));
    expect(stages[1].prevHash).toBe(stages[0].hash);
    expect(await head(`deployment#${executionId}|stage`)).toMatchObject({ seq: stages.length, hash: stages.at(-1)!.hash });

    const report = await verify();
    expect(report).toMatchObject({ verified: true, unchained: 0, broken: [] });
    expect(report.events).toBeGreaterThan(5);
    expect(report.chains).toBeGreaterThan(2);

    const exported = await kmod(['audit', 'export']);
    expect(exported.code, exported.err).toBe(0);
    writeFileSync(join(dir, 'audit.jsonl'), exported.out);
    expect(exported.out.trim().split('\n').length).toBeGreaterThanOrEqual(report.events);
    const offline = await kmod(['audit', 'verify', '--file', join(dir, 'audit.jsonl')]);
    expect(offline.code, offline.out).toBe(0);
    expect(offline.out).toMatch(/^verified: \d+ chained events/);
  });

  it('20 concurrent writers of one chain all land, numbered 1 to 20 without a gap', async () => {
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        audit({ subject: 'test#concurrency', category: 'config', action: 'test.concurrent', actor: 'system:test', details: { i } }),
      ),
    );
    const events = await chainEvents('test#concurrency', 'config');
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(new Set(events.map((e) => e.details.i)).size).toBe(20);
    for (let i = 1; i < events.length; i++) expect(events[i].prevHash).toBe(events[i - 1].hash);
    expect((await head('test#concurrency|config'))?.seq).toBe(20);
    expect((await verify()).verified).toBe(true);
  });

  it('a flood of refused requests adds one chained event per window, its count mutable and outside the hash', async () => {
    const refused = await Promise.all(Array.from({ length: 20 }, () => api(cloud, 'GET', '/api/v1/admin/users', { token: cloud.tokens.Viewer })));
    expect(refused.map((r) => r.status)).toEqual(Array(20).fill(403));
    const scan = await cloud.ddb.send(
      new ScanCommand({
        TableName: cloud.tableNames.audit,
        FilterExpression: '#a = :a',
        ExpressionAttributeNames: { '#a': 'action' },
        ExpressionAttributeValues: { ':a': 'access.denied' },
        ConsistentRead: true,
      }),
    );
    expect(scan.Items).toHaveLength(1);
    expect(scan.Items?.[0]).toMatchObject({ count: 20, seq: 1, mutable: ['count', 'latest'] });
    const report = await verify();
    expect(report).toMatchObject({ verified: true, mutableFields: ['count', 'latest'] });
  });

  it('only Admins verify; a bad query is a 400', async () => {
    for (const role of ['Viewer', 'Deployer', 'Approver'] as const)
      expect((await api(cloud, 'GET', '/api/v1/audit/verify', { token: cloud.tokens[role] })).status).toBe(403);
    for (const q of ['?from=yesterday', '?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z', '?limit=5']) {
      const r = await api(cloud, 'GET', `/api/v1/audit/verify${q}`, { token: cloud.tokens.Admin });
      expect(r.status, q).toBe(400);
      expect(r.body.code).toBe('ValidationError');
    }
    // Chain heads are not events: no listing shows them, and their subjects cannot be asked for.
    expect(
      (await api(cloud, 'GET', `/api/v1/audit?subject=${encodeURIComponent(headSubject('test#concurrency|config'))}`, { token: cloud.tokens.Admin })).status,
    ).toBe(400);
    const all = await api(cloud, 'GET', '/api/v1/audit?limit=500', { token: cloud.tokens.Admin });
    expect(all.body.items.some((i: { sk: string }) => i.sk === HEAD_SK)).toBe(false);
  });

  it('an event edited directly in DynamoDB is found, by the API and in an export', async () => {
    const [, second] = await chainEvents(`deployment#${executionId}`, 'stage');
    await cloud.ddb.send(
      new UpdateCommand({
        TableName: cloud.tableNames.audit,
        Key: { subject: second.subject, sk: second.sk },
        UpdateExpression: 'SET actor = :a',
        ExpressionAttributeValues: { ':a': 'mallory' },
      }),
    );
    const report = await verify(`?from=${started}`);
    expect(report.verified).toBe(false);
    expect(report.firstBroken).toMatchObject({ chain: `deployment#${executionId}|stage`, seq: 2, sk: second.sk, reason: 'hash-mismatch' });

    const exported = await kmod(['audit', 'export', '--from', started]);
    writeFileSync(join(dir, 'tampered.jsonl'), exported.out);
    const offline = await kmod(['audit', 'verify', '--file', join(dir, 'tampered.jsonl')]);
    expect(offline.code).toBe(1);
    expect(offline.out).toContain(`hash-mismatch deployment#${executionId}|stage seq 2 ${second.sk}`);
  });

  it('an event deleted from the middle, or the newest cut off, is found', async () => {
    const events = await chainEvents('test#concurrency', 'config');
    await cloud.ddb.send(new DeleteCommand({ TableName: cloud.tableNames.audit, Key: { subject: 'test#concurrency', sk: events[9].sk } }));
    const gap = await verify();
    expect(gap.broken).toContainEqual(expect.objectContaining({ chain: 'test#concurrency|config', seq: 10, sk: events[9].sk, reason: 'missing-event' }));
    await cloud.ddb.send(new DeleteCommand({ TableName: cloud.tableNames.audit, Key: { subject: 'test#concurrency', sk: events[19].sk } }));
    const cut = await verify();
    expect(cut.broken).toContainEqual(expect.objectContaining({ chain: 'test#concurrency|config', seq: 20, sk: events[19].sk, reason: 'truncated' }));
  });
});
