import { QueryCommand, type QueryCommandInput } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import { dynamo } from '../../lib/aws.ts';
import { decodeCursor, encodeCursor, fromCursor } from '../../lib/cursor.ts';
import { listAudit } from '../../lib/auditListing.ts';
import { apiHandler, json } from '../../lib/http.ts';
import { parseQuery } from '../../lib/parse.ts';
import { tableName } from '../../lib/tables.ts';

export const querySchema = z
  .object({
    deploymentId: z
      .string()
      .regex(/^dep-[a-z0-9]{9}-[a-f0-9]{12}$/)
      .optional(),
    subject: z.string().max(200).optional(),
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

/**
 * The audit trail, by deployment (or any subject), category, actor or trace id, within an
 * optional time range, oldest first unless `order=newest`; without a filter, every event, newest
 * first unless `order=oldest` (lib/auditListing.ts). Every key is time-ordered (`sk` starts with
 * the ISO time).
 */
export const handler = apiHandler({
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
      items: (r.Items ?? []).map(({ expiresAt: _ttl, ...item }) => item),
      nextCursor: encodeCursor(r.LastEvaluatedKey),
    });
  },
});
