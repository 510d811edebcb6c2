/**
 * The local backup format (`npm run backup`, `npm run restore`; docs/runbooks/backup-restore.md,
 * docs/adr/0034-local-backup-and-restore.md). A backup is a directory:
 *
 *   manifest.json                  what is in it, with a count and a SHA-256 per table, object and file
 *   tables/<table>.jsonl           every item of a table, one per line, in DynamoDB JSON
 *                                  (`{"id":{"S":"…"}}`, binaries base64 as the AWS CLI prints them),
 *                                  canonical JSON (RFC 8785) and sorted, so equal tables give equal files
 *   s3/<bucket>/<key>              every object of every bucket, byte for byte
 *   files/<path>                   the data dir's files that are state but not in a table (keys, PKI, …)
 *
 * The manifest is written last: a directory without one is an unfinished backup.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, normalize, sep } from 'node:path';
import { type AttributeValue, type DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import canonicalize from 'canonicalize';
import { z } from 'zod';

export const BACKUP_FORMAT = 'kmod-local-backup/1';

const sha256 = z.string().regex(/^[0-9a-f]{64}$/);
/** A path inside the backup: relative, no `..`, no absolute path. */
const inside = z
  .string()
  .min(1)
  .refine((p) => !p.startsWith('/') && !normalize(p).split(sep).includes('..'), 'must stay inside the backup');

export const Manifest = z.strictObject({
  format: z.literal(BACKUP_FORMAT),
  createdAt: z.string(),
  source: z.strictObject({ dataDir: z.string(), apiUrl: z.string(), dynamodbUrl: z.string(), servicesUrl: z.string() }),
  tables: z.array(z.strictObject({ key: z.string(), name: z.string(), file: inside, items: z.number().int().nonnegative(), sha256 })),
  objects: z.array(z.strictObject({ bucket: z.string().min(1), key: z.string().min(1), file: inside, bytes: z.number().int().nonnegative(), sha256 })),
  files: z.array(z.strictObject({ path: inside, bytes: z.number().int().nonnegative(), sha256 })),
});
export type Manifest = z.infer<typeof Manifest>;

/** Deployment statuses after which nothing more happens (functions/domain: Succeeded, Failed, RolledBack, Cancelled). */
export const FINISHED_STATUSES = ['Succeeded', 'Failed', 'RolledBack', 'Cancelled'];

/** The data dir's state outside DynamoDB and S3 that a restored cloud needs (paths relative to the data dir). */
export const STATE_FILES = ['secrets', 'pki', 'identity', 'fleet', 'routers', 'sns.json', 'stepfunctions/definitions', 'stepfunctions/executions'] as const;

type Item = Record<string, AttributeValue>;
type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');

/**
 * A DynamoDB number in one canonical decimal form: DynamoDB compares numbers, not strings, and
 * DynamoDB Local answers `2.30` for an `ADD` result that a `PutItem` of it stores as `2.3`. Exact
 * (string arithmetic, no floating point): `+002.300` → `2.3`, `1.2E-3` → `0.0012`, `-0` → `0`.
 */
export function canonicalNumber(n: string): string {
  const m = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(n.trim());
  if (!m || (m[2] === '' && (m[3] ?? '') === '')) throw new Error(`not a DynamoDB number: ${n}`);
  let digits = m[2] + (m[3] ?? '');
  // value = 0.<digits> × 10^point
  let point = m[2].length + Number(m[4] ?? 0);
  while (digits.startsWith('0')) {
    digits = digits.slice(1);
    point--;
  }
  digits = digits.replace(/0+$/, '');
  if (!digits) return '0';
  const body =
    point <= 0
      ? `0.${'0'.repeat(-point)}${digits}`
      : point >= digits.length
        ? digits + '0'.repeat(point - digits.length)
        : `${digits.slice(0, point)}.${digits.slice(point)}`;
  return m[1] === '-' ? `-${body}` : body;
}

/** One attribute value as DynamoDB JSON (the wire form): binaries as base64 strings, numbers canonical, sets sorted (they have no order). */
function valueToJson(v: AttributeValue): JsonValue {
  if (v.B !== undefined) return { B: b64(v.B) };
  if (v.BS !== undefined) return { BS: v.BS.map(b64).sort() };
  if (v.N !== undefined) return { N: canonicalNumber(v.N) };
  if (v.NS !== undefined) return { NS: v.NS.map(canonicalNumber).sort() };
  if (v.SS !== undefined) return { SS: [...v.SS].sort() };
  if (v.L !== undefined) return { L: v.L.map(valueToJson) };
  if (v.M !== undefined) return { M: itemToJson(v.M) };
  const [[k, inner]] = Object.entries(v).filter(([, x]) => x !== undefined);
  return { [k]: inner as JsonValue };
}

export function itemToJson(item: Item): { [k: string]: JsonValue } {
  return Object.fromEntries(Object.entries(item).map(([k, v]) => [k, valueToJson(v)]));
}

function valueFromJson(v: Record<string, unknown>): AttributeValue {
  if ('B' in v) return { B: Buffer.from(String(v.B), 'base64') };
  if ('BS' in v) return { BS: (v.BS as string[]).map((s) => Buffer.from(s, 'base64')) };
  if ('L' in v) return { L: (v.L as Record<string, unknown>[]).map(valueFromJson) };
  if ('M' in v) return { M: itemFromJson(v.M as Record<string, Record<string, unknown>>) };
  return v as unknown as AttributeValue;
}

export function itemFromJson(json: Record<string, Record<string, unknown>>): Item {
  return Object.fromEntries(Object.entries(json).map(([k, v]) => [k, valueFromJson(v)]));
}

/** A table's file: one canonical DynamoDB JSON item a line, sorted, newline-terminated. */
export function tableFile(items: Item[]): string {
  const lines = items.map((i) => canonicalize(itemToJson(i)) as string).sort();
  return lines.map((l) => `${l}\n`).join('');
}

export const sha256Of = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex');

/** Every item of a table: a paginated, strongly consistent Scan. */
export async function scanAll(client: DynamoDBClient, TableName: string): Promise<Item[]> {
  const items: Item[] = [];
  let ExclusiveStartKey: Item | undefined;
  do {
    const r = await client.send(new ScanCommand({ TableName, ExclusiveStartKey, ConsistentRead: true }));
    items.push(...(r.Items ?? []));
    ExclusiveStartKey = r.LastEvaluatedKey;
  } while (ExclusiveStartKey);
  return items;
}

/** The lines of a table file as items. */
export function parseTableFile(text: string): Item[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => itemFromJson(JSON.parse(l) as Record<string, Record<string, unknown>>));
}

/**
 * Everything wrong with a backup directory against its manifest: a missing file, a count or a
 * hash that differs. Empty when the backup is whole. Reads every file; writes nothing.
 */
export function checkBackup(dir: string, manifest: Manifest): string[] {
  const problems: string[] = [];
  const read = (rel: string): Buffer | undefined => {
    const p = join(dir, rel);
    if (!existsSync(p)) {
      problems.push(`${rel}: missing`);
      return undefined;
    }
    return readFileSync(p);
  };
  for (const t of manifest.tables) {
    const bytes = read(t.file);
    if (!bytes) continue;
    const lines = bytes.toString('utf8').split('\n').filter(Boolean).length;
    if (lines !== t.items) problems.push(`${t.file}: ${lines} items, the manifest says ${t.items}`);
    if (sha256Of(bytes) !== t.sha256) problems.push(`${t.file}: SHA-256 ${sha256Of(bytes)}, the manifest says ${t.sha256}`);
  }
  for (const o of manifest.objects) {
    const bytes = read(o.file);
    if (bytes && (bytes.length !== o.bytes || sha256Of(bytes) !== o.sha256))
      problems.push(`${o.file}: not the object s3://${o.bucket}/${o.key} the manifest describes`);
  }
  for (const f of manifest.files) {
    const bytes = read(join('files', f.path));
    if (bytes && (bytes.length !== f.bytes || sha256Of(bytes) !== f.sha256)) problems.push(`files/${f.path}: not the file the manifest describes`);
  }
  return problems;
}

/** Read and validate a backup's manifest (throws with the reason). */
export function readManifest(dir: string): Manifest {
  const file = join(dir, 'manifest.json');
  if (!existsSync(file)) throw new Error(`${file} does not exist (not a backup, or an unfinished one)`);
  const parsed = Manifest.safeParse(JSON.parse(readFileSync(file, 'utf8')));
  if (!parsed.success) throw new Error(`${file} is not a ${BACKUP_FORMAT} manifest: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}
