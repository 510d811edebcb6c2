/**
 * The audit export (docs/adr/0033-audit-retention-and-export.md): a day's events, read from the
 * Audit table's byCategory index (one query per category, on the day's sort-key prefix), written
 * to the export bucket as that day's one JSON Lines object (domain/auditExport.ts). Idempotent:
 * the same day always goes to the same key, in the same order and form, replacing what was there.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { AUDIT_CATEGORIES } from '../domain/auditRetention.ts';
import { type ExportableItem, onDay, parseDay, partitionKey, toJsonLines } from '../domain/auditExport.ts';
import { objectStore, queryAll } from './aws.ts';
import { config } from './config.ts';
import { tableName } from './tables.ts';

export interface DayExport {
  day: string;
  bucket: string;
  key: string;
  events: number;
  bytes: number;
}

/** Every audit event of the UTC day, in no particular order (the export orders them). */
export async function auditEventsOfDay(day: string): Promise<ExportableItem[]> {
  parseDay(day);
  const perCategory = await Promise.all(
    AUDIT_CATEGORIES.map((category) =>
      queryAll<ExportableItem>({
        TableName: tableName('audit'),
        IndexName: 'byCategory',
        KeyConditionExpression: 'category = :c AND begins_with(sk, :day)',
        ExpressionAttributeValues: { ':c': category, ':day': `${day}T` },
      }),
    ),
  );
  return perCategory.flat().filter((item) => onDay(item, day));
}

/** Export one day: its object is written (empty for a day without events) and replaces any earlier one. */
export async function exportAuditDay(day: string, bucket = config.auditExportBucket()): Promise<DayExport> {
  const body = toJsonLines(await auditEventsOfDay(day));
  const key = partitionKey(day);
  await objectStore().send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: 'application/x-ndjson' }));
  return { day, bucket, key, events: body ? body.split('\n').length - 1 : 0, bytes: Buffer.byteLength(body) };
}
