/**
 * Restore a backup (scripts/backup.ts) into a local cloud's data dir, with that cloud stopped
 * (docs/runbooks/backup-restore.md, docs/adr/0034-local-backup-and-restore.md):
 *
 *   npm run restore -- --from <backup dir> --data-dir <data dir> [--force]
 *   KMOD_DATA_DIR=<data dir> PORT=3100 npm start
 *
 * 1. Checks the backup against its manifest (every count and SHA-256) before writing anything.
 * 2. Starts the data dir's DynamoDB Local and an S3 endpoint on its objects, on free ports, and
 *    creates the tables as the cloud does.
 * 3. Refuses (writing nothing) when a table, a bucket or a state file there already holds data,
 *    unless --force: then it empties them (every table) first, so the result is the backup and
 *    nothing else.
 * 4. Writes every item (BatchWriteItem) and object (PutObject) through the AWS SDK, and the files.
 * 5. Reads everything back and checks it against the manifest, reporting the counts per table.
 */
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type AttributeValue, BatchWriteItemCommand, DescribeTableCommand, DynamoDBClient, ScanCommand, type WriteRequest } from '@aws-sdk/client-dynamodb';
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { TABLES, type TableKey } from '../functions/lib/tables.ts';
import { ensureTables, startDynamoDbLocal } from '../localcloud/dynamodb.ts';
import { LocalS3 } from '../localcloud/s3.ts';
import { checkBackup, type Manifest, parseTableFile, readManifest, STATE_FILES, scanAll, sha256Of, tableFile } from './lib/backup.ts';

const LOCAL = { region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } };
type Item = Record<string, AttributeValue>;

export class RestoreRefused extends Error {}

export interface TableReport {
  name: string;
  expected: number;
  restored: number;
  sha256Matches: boolean;
}

/** The data dir's own services, for a cloud that is not running: its DynamoDB Local and an S3 endpoint on its objects. */
async function openOffline(dataDir: string) {
  const dynamo = await startDynamoDbLocal(join(dataDir, 'dynamodb'));
  const s3 = new LocalS3(join(dataDir, 's3'));
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    await s3.handle(req, res, Buffer.concat(chunks)).catch((e: Error) => {
      if (!res.headersSent) res.writeHead(500);
      res.end(e.message);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const ddb = new DynamoDBClient({ ...LOCAL, endpoint: dynamo.endpoint });
  const s3Client = new S3Client({ ...LOCAL, endpoint: `http://127.0.0.1:${port}`, forcePathStyle: true });
  return {
    ddb,
    s3: s3Client,
    localS3: s3,
    close: async () => {
      ddb.destroy();
      s3Client.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await dynamo.stop();
    },
  };
}

/** The key attributes of a table's items (for deleting them under --force). */
async function keyOf(ddb: DynamoDBClient, TableName: string): Promise<string[]> {
  const t = await ddb.send(new DescribeTableCommand({ TableName }));
  return (t.Table?.KeySchema ?? []).map((k) => k.AttributeName ?? '');
}

/** BatchWriteItem in 25s, sending unprocessed items again until none is left. */
async function batchWrite(ddb: DynamoDBClient, TableName: string, requests: WriteRequest[]): Promise<void> {
  for (let i = 0; i < requests.length; i += 25) {
    let pending: WriteRequest[] = requests.slice(i, i + 25);
    for (let attempt = 0; pending.length; attempt++) {
      if (attempt > 10) throw new Error(`${TableName}: ${pending.length} item(s) still unprocessed after 10 retries`);
      if (attempt) await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
      const r = await ddb.send(new BatchWriteItemCommand({ RequestItems: { [TableName]: pending } }));
      pending = r.UnprocessedItems?.[TableName] ?? [];
    }
  }
}

async function objectsIn(s3: S3Client, Bucket: string): Promise<string[]> {
  const keys: string[] = [];
  let ContinuationToken: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket, ContinuationToken })).catch((e: { name?: string }) => {
      if (e.name === 'NoSuchBucket') return { Contents: [], NextContinuationToken: undefined };
      throw e;
    });
    keys.push(...(page.Contents ?? []).map((c) => c.Key ?? ''));
    ContinuationToken = page.NextContinuationToken;
  } while (ContinuationToken);
  return keys;
}

/** The state files a data dir already has (what a started cloud leaves: keys, PKI, fleet, …). */
function stateFilesIn(dataDir: string): string[] {
  const walk = (p: string): string[] => {
    const full = join(dataDir, p);
    if (!existsSync(full)) return [];
    return statSync(full).isDirectory() ? readdirSync(full).flatMap((e) => walk(join(p, e))) : [p];
  };
  return STATE_FILES.flatMap(walk);
}

export async function restore(o: { from: string; dataDir: string; force?: boolean; log: (line: string) => void }): Promise<TableReport[]> {
  const from = resolve(o.from);
  const dataDir = resolve(o.dataDir);
  const manifest: Manifest = readManifest(from);
  const problems = checkBackup(from, manifest);
  if (problems.length) throw new RestoreRefused(`the backup does not match its manifest; nothing was written:\n  ${problems.join('\n  ')}`);
  o.log(
    `backup ${from}: taken ${manifest.createdAt}, ${manifest.tables.length} tables, ${manifest.objects.length} objects, ${manifest.files.length} files; counts and SHA-256s check`,
  );
  for (const t of manifest.tables) {
    if (!(t.key in TABLES)) throw new RestoreRefused(`the backup has table ${t.name} (${t.key}), which this version does not know; nothing was written`);
  }
  const names = Object.fromEntries(Object.entries(TABLES).map(([k, spec]) => [k, `kmod-${spec.id}`])) as Record<TableKey, string>;

  // A cloud running on the data dir holds its DynamoDB Local files open: restoring under it would corrupt them.
  const cloudFile = join(dataDir, 'cloud.json');
  if (existsSync(cloudFile)) {
    const { apiUrl } = JSON.parse(readFileSync(cloudFile, 'utf8')) as { apiUrl?: string };
    const up = apiUrl ? await fetch(`${apiUrl}/health`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined) : undefined;
    if (up) throw new RestoreRefused(`a local cloud is running on ${dataDir} (${apiUrl}): stop it first, then restore`);
  }
  mkdirSync(dataDir, { recursive: true });

  const services = await openOffline(dataDir);
  try {
    const { ddb, s3 } = services;
    await ensureTables(ddb, names);

    // What is there already: nothing may be overwritten without --force.
    const occupied: string[] = [];
    for (const name of Object.values(names)) {
      const r = await ddb.send(new ScanCommand({ TableName: name, Limit: 1, Select: 'COUNT' }));
      if (r.Count || r.LastEvaluatedKey) occupied.push(`table ${name}`);
    }
    const buckets = [...new Set(manifest.objects.map((x) => x.bucket))];
    for (const b of buckets) if ((await objectsIn(s3, b)).length) occupied.push(`bucket ${b}`);
    const files = stateFilesIn(dataDir);
    if (files.length) occupied.push(`${files.length} state file(s) (${[...new Set(files.map((f) => f.split('/')[0]))].join(', ')})`);
    if (occupied.length && !o.force) {
      throw new RestoreRefused(
        `${dataDir} is not empty, nothing was written: ${occupied.join(', ')}. Restore into a new data dir, or give --force to replace them.`,
      );
    }
    if (occupied.length) {
      o.log(`--force: emptying ${occupied.join(', ')}`);
      for (const name of Object.values(names)) {
        const key = await keyOf(ddb, name);
        const items = await scanAll(ddb, name);
        await batchWrite(
          ddb,
          name,
          items.map((i) => ({ DeleteRequest: { Key: Object.fromEntries(key.map((k) => [k, i[k]])) } })),
        );
      }
      for (const b of buckets) for (const Key of await objectsIn(s3, b)) await s3.send(new DeleteObjectCommand({ Bucket: b, Key }));
      for (const p of STATE_FILES) rmSync(join(dataDir, p), { recursive: true, force: true });
    }

    for (const t of manifest.tables) {
      const items: Item[] = parseTableFile(readFileSync(join(from, t.file), 'utf8'));
      await batchWrite(
        ddb,
        names[t.key as TableKey],
        items.map((Item) => ({ PutRequest: { Item } })),
      );
    }
    for (const b of buckets) services.localS3.createBucket(b);
    for (const x of manifest.objects) {
      await s3.send(new PutObjectCommand({ Bucket: x.bucket, Key: x.key, Body: readFileSync(join(from, x.file)) }));
    }
    for (const f of manifest.files) {
      mkdirSync(join(dataDir, f.path, '..'), { recursive: true });
      cpSync(join(from, 'files', f.path), join(dataDir, f.path), { preserveTimestamps: true });
    }

    // Read everything back: the restore is done when the tables and objects are the backup's.
    const report: TableReport[] = [];
    const wrong: string[] = [];
    for (const t of manifest.tables) {
      const name = names[t.key as TableKey];
      const text = tableFile(await scanAll(ddb, name));
      const restored = text.split('\n').filter(Boolean).length;
      const r = { name, expected: t.items, restored, sha256Matches: sha256Of(text) === t.sha256 };
      report.push(r);
      o.log(
        `table   ${name.padEnd(24)} ${String(restored).padStart(6)} of ${String(t.items).padStart(6)} items  sha256 ${r.sha256Matches ? 'matches' : 'DIFFERS'}`,
      );
      if (!r.sha256Matches || restored !== t.items) wrong.push(name);
    }
    let objectsOk = 0;
    for (const x of manifest.objects) {
      const body = await (await s3.send(new GetObjectCommand({ Bucket: x.bucket, Key: x.key }))).Body?.transformToByteArray();
      if (body && sha256Of(body) === x.sha256) objectsOk++;
      else wrong.push(`s3://${x.bucket}/${x.key}`);
    }
    o.log(`objects ${String(objectsOk).padStart(31)} of ${manifest.objects.length} match`);
    const filesOk = manifest.files.filter((f) => sha256Of(readFileSync(join(dataDir, f.path))) === f.sha256).length;
    o.log(`files   ${String(filesOk).padStart(31)} of ${manifest.files.length} match`);
    if (filesOk !== manifest.files.length) wrong.push(`${manifest.files.length - filesOk} file(s)`);
    if (wrong.length) throw new Error(`the restored data differs from the backup: ${wrong.join(', ')}`);
    o.log(`restored into ${dataDir}; start it with: KMOD_DATA_DIR=${dataDir} PORT=<port> npm start`);
    return report;
  } finally {
    await services.close();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const { values } = parseArgs({
    options: { from: { type: 'string' }, 'data-dir': { type: 'string' }, force: { type: 'boolean' }, help: { type: 'boolean' } },
  });
  if (values.help || !values.from) {
    console.error('usage: npm run restore -- --from <backup dir> [--data-dir <data dir> (default KMOD_DATA_DIR or .local)] [--force]');
    process.exit(values.help ? 0 : 2);
  }
  restore({ from: values.from, dataDir: values['data-dir'] ?? process.env.KMOD_DATA_DIR ?? '.local', force: values.force, log: (l) => console.log(l) }).then(
    () => process.exit(0),
    (e: Error) => {
      console.error(`restore ${e instanceof RestoreRefused ? 'refused' : 'failed'}: ${e.message}`);
      process.exit(1);
    },
  );
}
