/**
 * The audit export's layout (docs/adr/0033-audit-retention-and-export.md): one JSON Lines object
 * per UTC day, under a Hive-style partition (`audit/dt=YYYY-MM-DD/events.jsonl`) that the Glue
 * table's partition projection names without any crawler. A day's object holds every event whose
 * time falls on that day, one canonical JSON document (RFC 8785) per line, in key order (time, then
 * subject): exporting the same day again writes the same key with the same bytes, so a re-run
 * replaces the object and never duplicates an event.
 */
import canonicalize from 'canonicalize';

/** Objects live under this prefix; the Glue table's location and projection template name it too. */
export const AUDIT_EXPORT_PREFIX = 'audit';
/** The partition column (Hive style: `dt=<value>` in the key). */
export const AUDIT_PARTITION_COLUMN = 'dt';
/** The one object of each day's partition. */
export const AUDIT_EXPORT_FILE = 'events.jsonl';
/** The first day the Glue table's partition projection offers (no event is older than the product). */
export const AUDIT_PROJECTION_START = '2026-01-01';

const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

/** A `YYYY-MM-DD` that is a real calendar day, else an Error naming it. */
export function parseDay(day: string): string {
  const m = DAY.exec(day);
  const d = m ? new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]))) : undefined;
  if (!d || d.toISOString().slice(0, 10) !== day) throw new Error(`a day must be YYYY-MM-DD, got "${day}"`);
  return day;
}

/** The UTC day (`YYYY-MM-DD`) of an instant. */
export const dayOf = (at: Date): string => at.toISOString().slice(0, 10);

/** The day `n` days after (or before, negative) `day`. */
export function addDays(day: string, n: number): string {
  return dayOf(new Date(Date.parse(`${parseDay(day)}T00:00:00.000Z`) + n * 86_400_000));
}

/** The partition's folder: `audit/dt=2026-11-29/`. */
export const partitionPrefix = (day: string): string => `${AUDIT_EXPORT_PREFIX}/${AUDIT_PARTITION_COLUMN}=${parseDay(day)}/`;

/** The day's object key: `audit/dt=2026-11-29/events.jsonl`. */
export const partitionKey = (day: string): string => `${partitionPrefix(day)}${AUDIT_EXPORT_FILE}`;

/** The day a partition key is for, or undefined for any other key. */
export function dayOfKey(key: string): string | undefined {
  const m = new RegExp(`^${AUDIT_EXPORT_PREFIX}/${AUDIT_PARTITION_COLUMN}=(\\d{4}-\\d{2}-\\d{2})/${AUDIT_EXPORT_FILE.replace('.', '\\.')}$`).exec(key);
  return m ? m[1] : undefined;
}

/**
 * The days a scheduled run exports at `now`: yesterday and today. Today's object grows with each
 * run; yesterday's is written once more after midnight, so an event written just before midnight
 * (or a refusal counted into its window's event after the last run) is in its final object.
 */
export function scheduledDays(now: Date): string[] {
  const today = dayOf(now);
  return [addDays(today, -1), today];
}

/** What a stored audit item needs for the export: its time-ordered sort key and its subject. */
export interface ExportableItem {
  subject: string;
  sk: string;
  [attribute: string]: unknown;
}

/** Does the item belong to the day? Its sort key starts with its ISO time (functions/lib/audit.ts). */
export const onDay = (item: ExportableItem, day: string): boolean => item.sk.startsWith(`${day}T`);

/**
 * The day's object: one canonical JSON line per item (every stored attribute, as stored), sorted
 * by sort key then subject, each item once (the same key given twice is one event), ending with a
 * newline; empty for no items.
 */
export function toJsonLines(items: readonly ExportableItem[]): string {
  const byKey = new Map<string, ExportableItem>();
  for (const item of items) byKey.set(`${item.sk}\u0000${item.subject}`, item);
  const sorted = [...byKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, item]) => item);
  return sorted.map((item) => `${canonicalize(item)}\n`).join('');
}
