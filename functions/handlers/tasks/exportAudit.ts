/**
 * Scheduled (EventBridge, hourly; the local cloud runs it on the same schedule): exports the audit
 * trail to S3 as daily JSON Lines partitions (lib/auditExport.ts, docs/adr/0033-audit-retention-and-export.md).
 * Each run rewrites yesterday's and today's objects from the table, so a run that failed, or ran
 * twice, leaves the same objects as one that succeeded once. `{ "day": "YYYY-MM-DD" }` exports that
 * day only (`npm run audit:export -- --day <day>` does the same from a shell).
 */
import { z } from 'zod';
import { parseDay, scheduledDays } from '../../domain/auditExport.ts';
import { exportAuditDay } from '../../lib/auditExport.ts';
import { taskHandler } from '../../lib/task.ts';
import { logger } from '../../lib/telemetry.ts';

// The scheduled event's `time` is when EventBridge fired it: a late or retried delivery exports the days of its own hour.
const input = z.looseObject({
  day: z
    .string()
    .refine((d) => {
      try {
        return Boolean(parseDay(d));
      } catch {
        return false;
      }
    }, 'must be a day, YYYY-MM-DD')
    .optional(),
  time: z.iso.datetime().optional(),
});

export const handler = taskHandler(input, async ({ day, time }) => {
  const days = day ? [day] : scheduledDays(time ? new Date(time) : new Date());
  const exported = [];
  for (const d of days) exported.push(await exportAuditDay(d));
  logger.info('audit exported', { exported });
  return { exported };
});
