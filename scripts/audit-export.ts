/**
 * Export the audit trail to S3 as daily JSON Lines partitions, on demand: what the scheduled
 * ExportAudit function (functions/handlers/tasks/exportAudit.ts) does every hour
 * (docs/adr/0033-audit-retention-and-export.md, docs/runbooks/audit.md).
 *
 *   npm run audit:export                              # yesterday and today (UTC), as the schedule does
 *   npm run audit:export -- --day 2026-11-29          # one day (repeat --day for more)
 *   npm run audit:export -- --aws --day 2026-11-29    # against AWS: AUDIT_TABLE and AUDIT_EXPORT_BUCKET from the environment
 *
 * Against the running local cloud by default (its .local/cloud.json; KMOD_DATA_DIR names another
 * data dir), into its bucket kmod-audit-export. A day exported again replaces its object with
 * the same events: re-running is always safe.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { TABLES } from '../functions/lib/tables.ts';

/** The local cloud's export bucket (localcloud/cloud.ts creates it). */
export const LOCAL_AUDIT_EXPORT_BUCKET = 'kmod-audit-export';

/** Point the data layer and S3 at the local cloud in `dataDir` (its cloud.json), as its Lambdas are. */
export function useLocalCloud(dataDir: string): void {
  const cloud = JSON.parse(readFileSync(join(dataDir, 'cloud.json'), 'utf8')) as { dynamodbUrl: string; servicesUrl: string };
  process.env.AWS_ENDPOINT_URL_DYNAMODB = cloud.dynamodbUrl;
  process.env.AWS_ENDPOINT_URL_S3 = cloud.servicesUrl;
  process.env.S3_FORCE_PATH_STYLE = 'true';
  process.env.AWS_REGION ??= 'us-east-1';
  process.env.AWS_ACCESS_KEY_ID ??= 'local';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'local';
  process.env.AUDIT_EXPORT_BUCKET ??= LOCAL_AUDIT_EXPORT_BUCKET;
  for (const spec of Object.values(TABLES)) process.env[spec.envVar] ??= `kmod-${spec.id}`;
}

async function main() {
  const { values } = parseArgs({
    options: { day: { type: 'string', multiple: true }, aws: { type: 'boolean', default: false }, help: { type: 'boolean', default: false } },
  });
  const usage = 'usage: npm run audit:export [-- [--day YYYY-MM-DD]... [--aws]]   (default: yesterday and today, UTC)';
  if (values.help) return console.log(usage);
  const { parseDay, scheduledDays } = await import('../functions/domain/auditExport.ts');
  let days: string[];
  try {
    days = values.day?.length ? values.day.map(parseDay) : scheduledDays(new Date());
  } catch (e) {
    console.error(`${(e as Error).message}\n${usage}`);
    process.exit(2);
  }
  if (!values.aws) useLocalCloud(process.env.KMOD_DATA_DIR ?? '.local');
  // Imported after the environment is set: the data layer reads its settings when first used.
  const { exportAuditDay } = await import('../functions/lib/auditExport.ts');
  for (const day of days) {
    const r = await exportAuditDay(day);
    console.log(`${r.day}: ${r.events} event(s), ${r.bytes} bytes -> s3://${r.bucket}/${r.key}`);
  }
}

if (process.argv[1]?.endsWith('audit-export.ts')) await main();
