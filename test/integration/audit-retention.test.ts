/**
 * Audit retention and export on the local cloud (issue 12 item 5, docs/adr/0033-audit-retention-and-export.md):
 *
 * - every audit event carries its category's TTL (AUDIT_RETENTION_DAYS_<CATEGORY>), refused
 *   callers' security events included;
 * - the local cloud's TTL sweep (DynamoDB Local never expires anything) deletes, with the clock
 *   moved forward, exactly the items past their TTL, category by category, in every table; and its
 *   periodic pass runs on its own;
 * - the export writes each UTC day's events to audit/dt=YYYY-MM-DD/events.jsonl in the local S3:
 *   every event of the day exactly once, one valid JSON document per line, nothing of another day;
 *   a re-run (the npm script, the scheduled function) rewrites the same object, never duplicates.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { GetCommand, PutCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addDays, dayOf, partitionKey } from '../../functions/domain/auditExport.ts';
import { AUDIT_CATEGORIES, type AuditCategory, DEFAULT_AUDIT_RETENTION_DAYS } from '../../functions/domain/auditRetention.ts';
import { auditItem } from '../../functions/lib/audit.ts';
import { TTL_ATTRIBUTE } from '../../functions/lib/tables.ts';
import { AUDIT_EXPORT_BUCKET, ROOT, type LocalCloud, startLocalCloud } from '../../localcloud/cloud.ts';
import { functionArn } from '../../localcloud/lambda.ts';
import { api, startTestCloud } from './harness.ts';
import { RESERVED_SUBJECT_PREFIX } from '../../functions/domain/auditChain.ts';

const run = promisify(execFile);
const DAY_S = 86_400;
/** Short retentions for two categories; the others keep their defaults. */
const RETENTION = { node: 1, security: 30 } as const;
const retentionOf = (c: AuditCategory) => (RETENTION as Partial<Record<AuditCategory, number>>)[c] ?? DEFAULT_AUDIT_RETENTION_DAYS[c];

let cloud: LocalCloud;
let dataDir: string;
let s3: S3Client;
const today = dayOf(new Date());
const yesterday = addDays(today, -1);

type Item = { subject: string; sk: string; category: AuditCategory; at: string; [k: string]: unknown };

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'kmod-it-audit-'));
  cloud = await startTestCloud({
    dataDir,
    cloudFile: join(dataDir, 'cloud.json'),
    env: { AUDIT_RETENTION_DAYS_NODE: String(RETENTION.node), AUDIT_RETENTION_DAYS_SECURITY: String(RETENTION.security), KMOD_TTL_SWEEP_SECONDS: '1' },
  });
  s3 = new S3Client({ endpoint: cloud.servicesUrl, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'l', secretAccessKey: 'l' } });
}, 120_000);
afterAll(async () => {
  s3?.destroy();
  await cloud?.stop();
});

/** Write one event of each category at `at`, through the product's own item builder (its TTL included). */
async function eventsAt(at: Date, tag: string): Promise<Item[]> {
  const items: Item[] = [];
  for (const category of AUDIT_CATEGORIES) {
    const { Item } = auditItem(
      { subject: `test#${tag}-${category}`, category, action: `test.${category}`, actor: 'system:test', details: { tag, n: [1, { deep: true }] } },
      at,
    );
    await cloud.ddb.send(new PutCommand({ TableName: cloud.tableNames.audit, Item }));
    items.push(Item as Item);
  }
  return items;
}

/** Every audit event in the table (the hash chains' head items are not events: docs/adr/0032). */
async function allAuditItems(): Promise<Item[]> {
  const items: Item[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const page = await cloud.ddb.send(new ScanCommand({ TableName: cloud.tableNames.audit, ExclusiveStartKey: start, ConsistentRead: true }));
    items.push(...((page.Items ?? []) as Item[]));
    start = page.LastEvaluatedKey;
  } while (start);
  return items.filter((i) => !String(i.subject).startsWith(RESERVED_SUBJECT_PREFIX));
}

async function exportedKeys(): Promise<string[]> {
  const r = await s3.send(new ListObjectsV2Command({ Bucket: AUDIT_EXPORT_BUCKET, Prefix: 'audit/' }));
  return (r.Contents ?? []).map((o) => o.Key!).sort();
}

async function exported(day: string): Promise<string> {
  const r = await s3.send(new GetObjectCommand({ Bucket: AUDIT_EXPORT_BUCKET, Key: partitionKey(day) }));
  return r.Body!.transformToString();
}

/** `npm run audit:export -- --day <day>` against this cloud (its cloud.json). */
async function exportWithScript(...days: string[]): Promise<string> {
  const { stdout } = await run(join(ROOT, 'node_modules/.bin/tsx'), ['scripts/audit-export.ts', ...days.flatMap((d) => ['--day', d])], {
    cwd: ROOT,
    env: { ...process.env, KMOD_DATA_DIR: dataDir },
  });
  return stdout;
}

const idOf = (i: { subject: string; sk: string }) => `${i.subject} ${i.sk}`;

describe('retention per category, through the TTL attribute', () => {
  it('every event expires at its time plus its category’s retention; a refused caller’s event by the security category', async () => {
    const at = new Date();
    const written = await eventsAt(at, 'ttl');
    for (const item of written) {
      const stored = (await cloud.ddb.send(new GetCommand({ TableName: cloud.tableNames.audit, Key: { subject: item.subject, sk: item.sk } }))).Item!;
      expect(stored[TTL_ATTRIBUTE], item.category).toBe(Math.floor(at.getTime() / 1000) + retentionOf(item.category) * DAY_S);
    }
    // A real refusal through the API: the denial aggregate is written by the product, with the security retention.
    const before = Math.floor(Date.now() / 1000);
    expect((await api(cloud, 'GET', '/api/v1/audit', { token: cloud.tokens.Viewer })).status).toBe(403);
    let denial: Item | undefined;
    for (let tries = 0; !denial && tries < 50; tries++) {
      denial = (await allAuditItems()).find((i) => i.category === 'security' && i.action === 'access.denied');
      if (!denial) await new Promise((r) => setTimeout(r, 100));
    }
    if (!denial) throw new Error('the refusal was not audited');
    const ttl = denial[TTL_ATTRIBUTE] as number;
    expect(ttl - RETENTION.security * DAY_S).toBeGreaterThanOrEqual(before);
    expect(ttl - RETENTION.security * DAY_S).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
  });
});

describe('the export: audit/dt=YYYY-MM-DD/events.jsonl in the local S3', () => {
  let todays: Item[];

  it('holds every event of the day exactly once, valid JSON per line, and nothing of another day', async () => {
    // Both sides of midnight: the last millisecond of yesterday and the first of today.
    const lastOfYesterday = await eventsAt(new Date(`${yesterday}T23:59:59.999Z`), 'late');
    const firstOfToday = await eventsAt(new Date(`${today}T00:00:00.000Z`), 'early');
    const out = await exportWithScript(yesterday, today);
    expect(out).toMatch(new RegExp(`^${today}: \\d+ event\\(s\\), \\d+ bytes -> s3://${AUDIT_EXPORT_BUCKET}/audit/dt=${today}/events\\.jsonl$`, 'm'));
    expect(await exportedKeys()).toEqual([partitionKey(yesterday), partitionKey(today)]);

    const all = await allAuditItems();
    todays = all.filter((i) => i.at.startsWith(today));
    for (const [day, expected] of [
      [today, todays],
      [yesterday, all.filter((i) => i.at.startsWith(yesterday))],
    ] as const) {
      const text = await exported(day);
      expect(text.endsWith('\n')).toBe(true);
      const lines = text.slice(0, -1).split('\n');
      const parsed = lines.map((l) => JSON.parse(l) as Item);
      // Exactly once each, and exactly the day's: as many lines as events, the same set.
      expect(parsed).toHaveLength(expected.length);
      expect(new Set(parsed.map(idOf)).size).toBe(parsed.length);
      expect(parsed.map(idOf).sort()).toEqual(expected.map(idOf).sort());
      // Every attribute as stored (the TTL and nested details included).
      const byId = new Map(expected.map((i) => [idOf(i), i]));
      for (const p of parsed) expect(p).toEqual(byId.get(idOf(p)));
      // In time order.
      expect(parsed.map((p) => p.sk)).toEqual([...parsed.map((p) => p.sk)].sort());
    }
    expect(todays.map(idOf)).toEqual(expect.arrayContaining(firstOfToday.map(idOf)));
    const yesterdays = (await exported(yesterday)).split('\n').filter(Boolean);
    expect(yesterdays.map((l) => idOf(JSON.parse(l)))).toEqual(expect.arrayContaining(lastOfYesterday.map(idOf)));
    expect(todays.length).toBeGreaterThan(AUDIT_CATEGORIES.length);
  }, 60_000);

  it('a re-run rewrites the same object with the same bytes; a new event shows once after the next run', async () => {
    const first = await exported(today);
    await exportWithScript(today);
    expect(await exported(today)).toBe(first);
    expect(await exportedKeys()).toEqual([partitionKey(yesterday), partitionKey(today)]);

    const [added] = await eventsAt(new Date(), 'added');
    // The scheduled function, invoked as EventBridge does (its `time`): yesterday and today, twice.
    const event = { source: 'aws.events', 'detail-type': 'Scheduled Event', time: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'), detail: {} };
    const result = (await cloud.lambda.invoke(functionArn('ExportAudit'), event)) as { exported: { day: string; key: string; events: number }[] };
    expect(result.exported.map((e) => e.key)).toEqual([partitionKey(yesterday), partitionKey(today)]);
    await cloud.lambda.invoke(functionArn('ExportAudit'), event);
    const lines = (await exported(today)).split('\n').filter(Boolean);
    expect(lines.filter((l) => idOf(JSON.parse(l)) === idOf(added))).toHaveLength(1);
    expect(new Set(lines.map((l) => idOf(JSON.parse(l)))).size).toBe(lines.length);
    expect(lines.length).toBe(result.exported[1].events);
    expect(lines.length).toBe((await allAuditItems()).filter((i) => i.at.startsWith(today)).length);
    expect(await exportedKeys()).toEqual([partitionKey(yesterday), partitionKey(today)]);
  }, 60_000);

  it('an unknown day is refused before anything is written', async () => {
    await expect(exportWithScript('2026-02-30')).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining('YYYY-MM-DD') });
    await expect(cloud.lambda.invoke(functionArn('ExportAudit'), { day: '2026-02-30' })).rejects.toThrow(/YYYY-MM-DD/);
    expect(await exportedKeys()).toEqual([partitionKey(yesterday), partitionKey(today)]);
  }, 60_000);
});

describe('the local TTL sweep, with the clock moved forward', () => {
  it('deletes exactly what is past its TTL: node events after a day, security after 30, the rest later', async () => {
    const at = new Date();
    const written = await eventsAt(at, 'sweep');
    const alive = async () => {
      const ids = new Set((await allAuditItems()).map(idOf));
      return written.filter((i) => ids.has(idOf(i))).map((i) => i.category);
    };
    // Another table with TTL: an idempotency record that expires when the node event does.
    const idem = { key: `test-${Date.now()}`, [TTL_ATTRIBUTE]: Math.floor(at.getTime() / 1000) + RETENTION.node * DAY_S };
    await cloud.ddb.send(new PutCommand({ TableName: cloud.tableNames.idempotency, Item: idem }));

    // Now, and a second before the node events' TTL: nothing goes.
    await cloud.ttl.sweep(at);
    await cloud.ttl.sweep(new Date(at.getTime() + (RETENTION.node * DAY_S - 1) * 1000));
    expect((await alive()).sort()).toEqual([...AUDIT_CATEGORIES].sort());
    expect((await cloud.ddb.send(new GetCommand({ TableName: cloud.tableNames.idempotency, Key: { key: idem.key } }))).Item).toBeDefined();

    // A day and a second later: the node event and the idempotency record, nothing else of these.
    const oneDay = await cloud.ttl.sweep(new Date(at.getTime() + (RETENTION.node * DAY_S + 1) * 1000));
    expect(oneDay.deleted.audit).toBeGreaterThanOrEqual(1);
    expect(oneDay.deleted.idempotency).toBeGreaterThanOrEqual(1);
    expect((await alive()).sort()).toEqual(AUDIT_CATEGORIES.filter((c) => c !== 'node').sort());
    expect((await cloud.ddb.send(new GetCommand({ TableName: cloud.tableNames.idempotency, Key: { key: idem.key } }))).Item).toBeUndefined();

    // 31 days on: security too. Each remaining category goes when its own retention has passed.
    await cloud.ttl.sweep(new Date(at.getTime() + 31 * DAY_S * 1000));
    expect((await alive()).sort()).toEqual(AUDIT_CATEGORIES.filter((c) => c !== 'node' && c !== 'security').sort());
    for (const c of ['stage', 'deployment', 'approval'] as const) {
      await cloud.ttl.sweep(new Date(at.getTime() + (retentionOf(c) * DAY_S + 1) * 1000));
      expect(await alive(), c).not.toContain(c);
    }
    expect(await alive()).toEqual([]);
  }, 60_000);

  it('runs on its own every KMOD_TTL_SWEEP_SECONDS: an item already past its TTL disappears', async () => {
    const item = { key: `test-expired-${Date.now()}`, [TTL_ATTRIBUTE]: Math.floor(Date.now() / 1000) - 5 };
    const fresh = { key: `test-fresh-${Date.now()}`, [TTL_ATTRIBUTE]: Math.floor(Date.now() / 1000) + 3600 };
    await cloud.ddb.send(new PutCommand({ TableName: cloud.tableNames.idempotency, Item: item }));
    await cloud.ddb.send(new PutCommand({ TableName: cloud.tableNames.idempotency, Item: fresh }));
    const get = (key: string) => cloud.ddb.send(new GetCommand({ TableName: cloud.tableNames.idempotency, Key: { key }, ConsistentRead: true }));
    const deadline = Date.now() + 15_000;
    while ((await get(item.key)).Item && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    expect((await get(item.key)).Item).toBeUndefined();
    expect((await get(fresh.key)).Item).toBeDefined();
  }, 30_000);
});

describe('a bad retention setting', () => {
  it('stops the local cloud at start, naming the setting', async () => {
    await cloud.stop();
    await expect(
      startLocalCloud({ dataDir: mkdtempSync(join(tmpdir(), 'kmod-it-bad-')), fresh: true, apiPort: 0, env: { AUDIT_RETENTION_DAYS_CONFIG: 'forever' } }),
    ).rejects.toThrow(/AUDIT_RETENTION_DAYS_CONFIG must be a whole number of days/);
    delete process.env.AUDIT_RETENTION_DAYS_CONFIG;
  }, 120_000);
});
