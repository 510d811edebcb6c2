/**
 * How long the Audit table keeps each category of event (docs/adr/0033-audit-retention-and-export.md).
 * Retention is enforced by the table's TTL attribute: an event's `expiresAt` is its time plus its
 * category's retention, set when it is written. What is older than that lives on in the daily
 * JSON Lines export to S3 (kept far longer, by the bucket's lifecycle), not in the table.
 *
 * Settings, from the environment (the CDK app sets them from the `auditRetentionDays` context):
 * - `AUDIT_RETENTION_DAYS_<CATEGORY>` (e.g. `AUDIT_RETENTION_DAYS_SECURITY=1095`) for one category;
 * - `AUDIT_RETENTION_DAYS`, for every category not named on its own;
 * - neither: the defaults below.
 * Each must be a whole number of days from 1 to 36500; anything else, or a category that does not
 * exist (`AUDIT_RETENTION_DAYS_SECURTY`), is refused with an error naming it.
 */
export const AUDIT_CATEGORIES = ['deployment', 'stage', 'node', 'module', 'approval', 'security', 'config'] as const;
export type AuditCategory = (typeof AUDIT_CATEGORIES)[number];

export type AuditRetention = Record<AuditCategory, number>;

/**
 * Days in the table when nothing is configured. Who decided and who was refused (approval,
 * security, config) is what an auditor asks about years later: three years. Deployments and
 * module registrations a little over a year (a yearly audit covers the whole previous year).
 * Stage progress and node events are operational detail, high in volume: 180 and 90 days.
 */
export const DEFAULT_AUDIT_RETENTION_DAYS: AuditRetention = {
  deployment: 400,
  stage: 180,
  node: 90,
  module: 400,
  approval: 1095,
  security: 1095,
  config: 1095,
};

/** A mistake of milliseconds for seconds, or of a century, is caught here rather than kept forever. */
export const MAX_AUDIT_RETENTION_DAYS = 36_500;
const PREFIX = 'AUDIT_RETENTION_DAYS';

export class AuditRetentionError extends Error {
  override name = 'AuditRetentionError';
}

function days(name: string, raw: string): number {
  const trimmed = raw.trim();
  const n = /^\d+$/.test(trimmed) ? Number(trimmed) : Number.NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_AUDIT_RETENTION_DAYS)
    throw new AuditRetentionError(`${name} must be a whole number of days from 1 to ${MAX_AUDIT_RETENTION_DAYS}, got "${raw}"`);
  return n;
}

/** Every category's retention in days from the settings (see above); throws AuditRetentionError on bad ones. */
export function resolveAuditRetention(env: Readonly<Record<string, string | undefined>>): AuditRetention {
  const given = (name: string) => (env[name] === undefined || env[name] === '' ? undefined : env[name]);
  for (const name of Object.keys(env)) {
    if (!name.startsWith(`${PREFIX}_`) || given(name) === undefined) continue;
    const category = name.slice(PREFIX.length + 1).toLowerCase();
    if (!(AUDIT_CATEGORIES as readonly string[]).includes(category))
      throw new AuditRetentionError(`${name} names no audit category: use one of ${AUDIT_CATEGORIES.map((c) => `${PREFIX}_${c.toUpperCase()}`).join(', ')}`);
  }
  const fallback = given(PREFIX);
  const all = fallback === undefined ? undefined : days(PREFIX, fallback);
  const out = {} as AuditRetention;
  for (const c of AUDIT_CATEGORIES) {
    const name = `${PREFIX}_${c.toUpperCase()}`;
    const own = given(name);
    out[c] = own !== undefined ? days(name, own) : (all ?? DEFAULT_AUDIT_RETENTION_DAYS[c]);
  }
  return out;
}

/** The settings that give `retention` (what the CDK app hands each function that writes audit events). */
export function auditRetentionEnvironment(retention: AuditRetention): Record<string, string> {
  return Object.fromEntries(AUDIT_CATEGORIES.map((c) => [`${PREFIX}_${c.toUpperCase()}`, String(retention[c])]));
}

/** The TTL attribute's value (epoch seconds) of an event at `at` kept `retentionDays` days. */
export function auditExpiresAt(at: Date, retentionDays: number): number {
  return Math.floor(at.getTime() / 1000) + retentionDays * 86_400;
}
