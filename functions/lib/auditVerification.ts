/**
 * GET /api/v1/audit/verify: the audit events of a time range, their predecessors before it and
 * their chains' heads, checked by the same pure function as an offline export
 * (functions/domain/auditChain.ts, docs/adr/0032-tamper-evident-audit.md).
 *
 * Work is bounded: the events are read per category (the byCategory index, time-ordered), at most
 * `auditVerifyMaxEvents` of them; a range holding more is refused with 422 before anything else is
 * read. Then one BatchGetItem per 100 chain heads and per 100 predecessors outside the range.
 */
import { QueryCommand, type QueryCommandOutput } from '@aws-sdk/lib-dynamodb';
import {
  type AuditRecord,
  type ChainHead,
  HEAD_SK,
  headSubject,
  missingPredecessors,
  predecessorKey,
  type VerifyReport,
  verifyChains,
} from '../domain/auditChain.ts';
import { AppError } from '../domain/errors.ts';
import { AUDIT_CATEGORIES } from './audit.ts';
import { batchGetAll, dynamo } from './aws.ts';
import { config } from './config.ts';
import { tableName, TTL_ATTRIBUTE } from './tables.ts';

export interface VerifyQuery {
  from?: string;
  to?: string;
}

const skRange = (q: VerifyQuery) => ({
  expression: q.from && q.to ? ' AND sk BETWEEN :from AND :to' : q.from ? ' AND sk >= :from' : q.to ? ' AND sk <= :to' : '',
  values: { ...(q.from ? { ':from': q.from } : {}), ...(q.to ? { ':to': `${q.to}~` } : {}) },
});

/** Every event of the range, all categories; refused past `max`. */
async function eventsInRange(q: VerifyQuery, max: number): Promise<AuditRecord[]> {
  const range = skRange(q);
  const events: AuditRecord[] = [];
  for (const category of AUDIT_CATEGORIES) {
    let start: Record<string, unknown> | undefined;
    do {
      const r: QueryCommandOutput = await dynamo().send(
        new QueryCommand({
          TableName: tableName('audit'),
          IndexName: 'byCategory',
          KeyConditionExpression: `category = :c${range.expression}`,
          ExpressionAttributeValues: { ':c': category, ...range.values },
          Limit: Math.min(1000, max + 1 - events.length),
          ExclusiveStartKey: start,
        }),
      );
      events.push(...((r.Items ?? []) as AuditRecord[]));
      if (events.length > max)
        throw new AppError('RangeTooLarge', `more than ${max} audit events between from and to: verify a narrower range (for example one day at a time)`, 422, {
          maxEvents: max,
        });
      start = r.LastEvaluatedKey;
    } while (start);
  }
  return events;
}

/** One chain's events in the range, read from its subject's partition. */
async function chainEvents(subject: string, category: string, q: VerifyQuery): Promise<AuditRecord[]> {
  const range = skRange(q);
  const out: AuditRecord[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const r: QueryCommandOutput = await dynamo().send(
      new QueryCommand({
        TableName: tableName('audit'),
        KeyConditionExpression: `subject = :s${range.expression}`,
        FilterExpression: 'category = :c',
        ExpressionAttributeValues: { ':s': subject, ':c': category, ...range.values },
        ConsistentRead: true,
        ExclusiveStartKey: start,
      }),
    );
    out.push(...((r.Items ?? []) as AuditRecord[]));
    start = r.LastEvaluatedKey;
  } while (start);
  return out;
}

async function headsOf(chains: readonly string[]): Promise<Map<string, ChainHead | null>> {
  const items = await batchGetAll<AuditRecord>(
    tableName('audit'),
    chains.map((c) => ({ subject: headSubject(c), sk: HEAD_SK })),
  );
  const heads = new Map<string, ChainHead | null>(chains.map((c) => [c, null]));
  for (const h of items)
    heads.set(String(h.subject).slice(headSubject('').length), {
      seq: Number(h.seq),
      hash: String(h.hash),
      eventSk: String(h.eventSk),
      expiresAt: Number(h[TTL_ATTRIBUTE]),
    });
  return heads;
}

async function predecessorsOf(events: readonly AuditRecord[]): Promise<Map<string, AuditRecord | null>> {
  const wanted = missingPredecessors(events);
  const found = await batchGetAll<AuditRecord>(tableName('audit'), wanted);
  const map = new Map<string, AuditRecord | null>(wanted.map((k) => [predecessorKey(k.subject, k.sk), null]));
  for (const item of found) map.set(predecessorKey(String(item.subject), String(item.sk)), item);
  return map;
}

export type VerifyAnswer = VerifyReport & { from: string | null; to: string | null; checkedAt: string };

export async function verifyAuditRange(q: VerifyQuery, now = new Date(), max = config.auditVerifyMaxEvents()): Promise<VerifyAnswer> {
  let events = await eventsInRange(q, max);
  const chains = [...new Set(events.map((e) => e.chain).filter((c): c is string => typeof c === 'string'))];
  // The heads are read after the events: a head may name an event committed in between.
  const heads = await headsOf(chains);
  const check = async (maxBroken?: number) =>
    verifyChains({ events, predecessors: await predecessorsOf(events), heads, from: q.from, to: q.to, now: Math.floor(now.getTime() / 1000), maxBroken });
  // Every chain that may have raced, not only those the report lists: with the list capped at 20,
  // 300 connections closing during a verify left the 21st racing chain on reported "truncated".
  let report = await check(Number.POSITIVE_INFINITY);
  const raced = [...new Set(report.broken.filter((b) => b.reason === 'truncated').map((b) => b.chain))];
  if (raced.length) {
    // Such a chain is read again, now that its head has been read: its newest event is there unless it is gone.
    const again = await Promise.all(
      raced.map((chain) => {
        const sample = events.find((e) => e.chain === chain)!;
        return chainEvents(String(sample.subject), String(sample.category), q);
      }),
    );
    const racing = new Set(raced);
    events = [...events.filter((e) => !racing.has(String(e.chain))), ...again.flat().filter((e) => racing.has(String(e.chain)))];
  }
  if (raced.length || report.broken.length) report = await check();
  return { from: q.from ?? null, to: q.to ?? null, checkedAt: now.toISOString(), ...report };
}
