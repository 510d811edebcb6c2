import { QueryCommand, type QueryCommandInput } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import { dynamo } from '../../lib/aws.ts';
import { decodeCursor, encodeCursor, fromCursor } from '../../lib/cursor.ts';
import { listAudit } from '../../lib/auditListing.ts';
import { verifyAuditRange } from '../../lib/auditVerification.ts';
import { RESERVED_SUBJECT_PREFIX } from '../../domain/auditChain.ts';
import { apiHandler, json } from '../../lib/http.ts';
import { parseQuery } from '../../lib/parse.ts';
import { tableName } from '../../lib/tables.ts';

export const querySchema = z
  .object({
    deploymentId: z
      .string()
      .regex(/^dep-[a-z0-9]{9}-[a-f0-9]{12}$/)
      .optional(),
    // Subjects starting with `#` hold the chains' heads, not events (docs/adr/0032).
    subject: z
      .string()
      .max(200)
      .refine((s) => !s.startsWith(RESERVED_SUBJECT_PREFIX), { message: `subjects starting with ${RESERVED_SUBJECT_PREFIX} are reserved` })
      .optional(),
    category: z.enum(['deployment', 'stage', 'node', 'module', 'approval', 'security', 'config']).optional(),
    actor: z.string().max(200).optional(),
    traceId: z.string().max(200).optional(),
    from: z.iso.datetime().optional(),
    to: z.iso.datetime().optional(),
    limit: z.coerce.number().int().min(1).max(500).default(100),
    cursor: z.string().max(4096).optional(),
    /** Default: newest first without a filter (the latest events), oldest first with one (a story in order). */
    order: z.enum(['newest', 'oldest']).optional(),
  })
  .strict()
  .refine((q) => [q.deploymentId, q.subject, q.category, q.actor, q.traceId].filter(Boolean).length <= 1, {
    message: 'give at most one of deploymentId, subject, category, actor or traceId',
  })
  .refine((q) => !q.from || !q.to || Date.parse(q.from) <= Date.parse(q.to), { message: 'from must not be after to' });

export const verifyQuerySchema = z
  .object({
    from: z.iso.datetime().optional().describe('Start of the range (ISO time); default: the oldest event kept'),
    to: z.iso.datetime().optional().describe('End of the range (ISO time); default: now'),
  })
  .strict()
  .refine((q) => !q.from || !q.to || Date.parse(q.from) <= Date.parse(q.to), { message: 'from must not be after to' });

/**
 * The audit trail, by deployment (or any subject), category, actor or trace id, within an
 * optional time range, oldest first unless `order=newest`; without a filter, every event, newest
 * first unless `order=oldest` (lib/auditListing.ts). Every key is time-ordered (`sk` starts with
 * the ISO time).
 */
export const handler = apiHandler({
  /**
   * Recompute the hash chains of the events in a time range (docs/adr/0032): 200 with
   * `verified` and the first broken link; 422 when the range holds too many events to check in one request.
   */
  'GET /api/v1/audit/verify': async (event) => {
    const q = parseQuery(event, verifyQuerySchema);
    return json(200, await verifyAuditRange(q));
  },
  'GET /api/v1/audit': async (event) => {
    const q = parseQuery(event, querySchema);
    if (!q.deploymentId && !q.subject && !q.category && !q.actor && !q.traceId)
      return json(200, await listAudit({ order: q.order ?? 'newest', limit: q.limit, from: q.from, to: q.to, cursor: q.cursor }));
    const [index, key, value] = q.deploymentId
      ? [undefined, 'subject', `deployment#${q.deploymentId}`]
      : q.subject
        ? [undefined, 'subject', q.subject]
        : q.category
          ? ['byCategory', 'category', q.category]
          : q.actor
            ? ['byActor', 'actor', q.actor]
            : ['byTrace', 'traceId', q.traceId!];
    const range = q.from && q.to ? ' AND sk BETWEEN :from AND :to' : q.from ? ' AND sk >= :from' : q.to ? ' AND sk <= :to' : '';
    const cursor = decodeCursor(q.cursor);
    const input: QueryCommandInput = {
      TableName: tableName('audit'),
      IndexName: index,
      KeyConditionExpression: `#k = :v${range}`,
      ExpressionAttributeNames: { '#k': key },
      ExpressionAttributeValues: { ':v': value, ...(q.from ? { ':from': q.from } : {}), ...(q.to ? { ':to': `${q.to}~` } : {}) },
      Limit: q.limit,
      ExclusiveStartKey: cursor,
      ScanIndexForward: q.order !== 'newest',
    };
    const r = await fromCursor(cursor, () => dynamo().send(new QueryCommand(input)));
    return json(200, {
      // As stored, TTL included: the hash covers every attribute (an export verifies offline).
      items: r.Items ?? [],
      nextCursor: encodeCursor(r.LastEvaluatedKey),
    });
  },
});
