/**
 * The whole audit trail, newest first (or oldest first), paged, without a filter: for people
 * reading "what happened lately". There is no single key every event shares, and giving them one
 * (a constant partition) would put every audit write of the product on one hot partition. Every
 * event has one of seven categories, and the `byCategory` index keeps each category time-ordered,
 * so a page is a merge of seven ordered streams: each category is read from where the last page
 * left it, the items are merged by time, and the page takes the first `limit`. The cursor keeps
 * each category's position. A page reads at most 7 × `limit` items. Newest first, a category read
 * to its end is done (anything written later is newer than the first page); oldest first it is
 * read again from its last item, so events written while a reader pages are not missed.
 */
import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import { AppError } from '../domain/errors.ts';
import { AUDIT_CATEGORIES, type AuditCategory } from './audit.ts';
import { dynamo } from './aws.ts';
import { fromCursor } from './cursor.ts';
import { tableName } from './tables.ts';

type Key = { subject: string; sk: string; category: string };
/** Per category: where its next read starts (after this key), or `end` when it has nothing more. */
type Positions = Partial<Record<AuditCategory, Key | 'end'>>;

const keySchema = z.object({ subject: z.string().max(400), sk: z.string().max(200), category: z.enum(AUDIT_CATEGORIES) }).strict();
const cursorSchema = z
  .object({ o: z.enum(['newest', 'oldest']), p: z.partialRecord(z.enum(AUDIT_CATEGORIES), z.union([z.literal('end'), keySchema])) })
  .strict()
  .refine((c) => Object.entries(c.p).every(([cat, pos]) => pos === 'end' || pos.category === cat));

function decode(cursor: string | undefined, order: 'newest' | 'oldest'): Positions {
  if (!cursor) return {};
  let parsed: z.infer<typeof cursorSchema> | undefined;
  try {
    parsed = cursorSchema.parse(JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')));
  } catch {
    parsed = undefined;
  }
  if (!parsed) throw new AppError('ValidationError', 'cursor is not one this API returned');
  if (parsed.o !== order) throw new AppError('ValidationError', `cursor belongs to a listing in ${parsed.o}-first order`);
  return parsed.p as Positions;
}

const encode = (order: 'newest' | 'oldest', p: Positions) => Buffer.from(JSON.stringify({ o: order, p })).toString('base64url');

export interface ListingQuery {
  order: 'newest' | 'oldest';
  limit: number;
  from?: string;
  to?: string;
  cursor?: string;
}

export async function listAudit(q: ListingQuery): Promise<{ items: Record<string, unknown>[]; nextCursor: string | null }> {
  const positions = decode(q.cursor, q.order);
  const range = q.from && q.to ? ' AND sk BETWEEN :from AND :to' : q.from ? ' AND sk >= :from' : q.to ? ' AND sk <= :to' : '';
  const reads = await Promise.all(
    AUDIT_CATEGORIES.map(async (category) => {
      const pos = positions[category];
      if (pos === 'end') return { category, items: [] as Record<string, unknown>[], last: undefined };
      // A forged position of the right shape can still be refused by DynamoDB: the client's mistake.
      const r = await fromCursor(pos, () =>
        dynamo().send(
          new QueryCommand({
            TableName: tableName('audit'),
            IndexName: 'byCategory',
            KeyConditionExpression: `category = :c${range}`,
            ExpressionAttributeValues: { ':c': category, ...(q.from ? { ':from': q.from } : {}), ...(q.to ? { ':to': `${q.to}~` } : {}) },
            ScanIndexForward: q.order === 'oldest',
            Limit: q.limit,
            ExclusiveStartKey: pos,
          }),
        ),
      );
      return { category, items: r.Items ?? [], last: r.LastEvaluatedKey as Key | undefined };
    }),
  );
  // Merge by time (sk starts with the ISO time and is unique), newest or oldest first.
  const sign = q.order === 'newest' ? -1 : 1;
  const merged = reads
    .flatMap((r) => r.items.map((item, i) => ({ item, category: r.category, i })))
    .sort((a, b) => sign * String(a.item.sk).localeCompare(String(b.item.sk)));
  const page = merged.slice(0, q.limit);
  const next: Positions = { ...positions };
  let more = false;
  for (const r of reads) {
    if (positions[r.category] === 'end') continue;
    const taken = page.filter((x) => x.category === r.category).length;
    if (taken < r.items.length) {
      more = true;
      // Not read past: the next page starts after the last item taken (or where this one started).
      if (taken > 0) {
        const lastTaken = r.items[taken - 1];
        next[r.category] = { subject: String(lastTaken.subject), sk: String(lastTaken.sk), category: r.category };
      }
    } else if (r.last) {
      more = true;
      next[r.category] = r.last;
    } else if (q.order === 'newest') next[r.category] = 'end';
    // Oldest first, a category read to its end may still grow: the next page reads on after its last item.
    else if (taken > 0) {
      const lastTaken = r.items[taken - 1];
      next[r.category] = { subject: String(lastTaken.subject), sk: String(lastTaken.sk), category: r.category };
    }
  }
  return {
    // As stored, TTL included: the hash covers every attribute (an export verifies offline).
    items: page.map(({ item }) => item),
    nextCursor: more ? encode(q.order, next) : null,
  };
}
