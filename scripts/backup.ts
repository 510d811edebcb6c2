/**
 * Back up a running local cloud (docs/runbooks/backup-restore.md):
 *
 *   npm run backup -- --out <dir> [--data-dir <data dir>]
 *
 * Every table (a paginated Scan through the AWS SDK against its DynamoDB Local), every S3 object
 * (through its S3 API), and the data dir's state files (keys, PKI, issuer key, SNS, the simulated
 * fleet, the finished Step Functions executions), with a manifest of counts and SHA-256s
 * (scripts/lib/backup.ts). It refuses while anything is in flight, checked before and after. The
 * data dir is `--data-dir`, else KMOD_DATA_DIR, else .local; the endpoints come from its cloud.json.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, ListBucketsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { TABLES, type TableKey } from '../functions/lib/tables.ts';
import { BACKUP_FORMAT, FINISHED_STATUSES, type Manifest, STATE_FILES, scanAll, sha256Of, tableFile } from './lib/backup.ts';

const LOCAL = { region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } };

/** Every file under a path (a file or a directory), relative to `root`. */
function filesUnder(root: string, path: string): string[] {
  const full = join(root, path);
  if (!existsSync(full)) return [];
  if (!statSync(full).isDirectory()) return [path];
  return readdirSync(full).flatMap((entry) => filesUnder(root, join(path, entry)));
}

/**
 * What is under way: unfinished deployments (or finished ones with a rollback running) and
 * running executions. A Scan of every table is not one instant, and an execution's journal is
 * read at yet another: a backup of work in flight could restore a deployment halfway, with no
 * execution to finish or cancel it. So the backup is of a quiet cloud (ADR 0034).
 */
async function inFlight(dynamodbUrl: string, dataDir: string): Promise<string[]> {
  const ddb = new DynamoDBClient({ ...LOCAL, endpoint: dynamodbUrl });
  const found: string[] = [];
  try {
    for (const i of await scanAll(ddb, `kmod-${TABLES.deployments.id}`)) {
      const status = i.status?.S ?? '';
      if (!FINISHED_STATUSES.includes(status)) found.push(`deployment ${i.executionId?.S} (${status})`);
      else if (i.rollback?.M?.status?.S === 'Running') found.push(`deployment ${i.executionId?.S} (${status}, rollback running)`);
    }
  } finally {
    ddb.destroy();
  }
  for (const rel of filesUnder(dataDir, 'stepfunctions/executions').filter((f) => /\/[^/]+\.json$/.test(f))) {
    try {
      const record = JSON.parse(readFileSync(join(dataDir, rel), 'utf8')) as { status?: string; executionArn?: string };
      if (record.status === 'RUNNING') found.push(`execution ${record.executionArn}`);
    } catch {
      /* an unreadable record is copied as it is: the restored cloud ends it FAILED, as this one would */
    }
  }
  return found;
}

const describe = (what: string[]) => `${what.length} thing(s) in flight: ${what.join(', ')}`;

export async function backup(o: { dataDir: string; out: string; log: (line: string) => void }): Promise<Manifest> {
  const dataDir = resolve(o.dataDir);
  const out = resolve(o.out);
  const cloudFile = join(dataDir, 'cloud.json');
  if (!existsSync(cloudFile)) throw new Error(`${cloudFile} does not exist: start the local cloud (KMOD_DATA_DIR=${dataDir} npm start)`);
  const cloud = JSON.parse(readFileSync(cloudFile, 'utf8')) as { apiUrl: string; dynamodbUrl: string; servicesUrl: string };
  const health = await fetch(`${cloud.apiUrl}/health`, { signal: AbortSignal.timeout(3000) }).catch(() => undefined);
  if (health?.status !== 200) throw new Error(`the local cloud of ${dataDir} does not answer at ${cloud.apiUrl}/health: start it first`);
  if (existsSync(out) && readdirSync(out).length) throw new Error(`${out} is not empty: give a new directory`);
  const before = await inFlight(cloud.dynamodbUrl, dataDir);
  if (before.length) {
    throw new Error(
      `${describe(before)}: back up a quiet cloud. Wait for them to finish, or cancel them (npx kmod cancel <id>), then run the backup again (docs/runbooks/backup-restore.md)`,
    );
  }
  mkdirSync(join(out, 'tables'), { recursive: true });

  const manifest: Manifest = {
    format: BACKUP_FORMAT,
    createdAt: new Date().toISOString(),
    source: { dataDir, apiUrl: cloud.apiUrl, dynamodbUrl: cloud.dynamodbUrl, servicesUrl: cloud.servicesUrl },
    tables: [],
    objects: [],
    files: [],
  };

  const ddb = new DynamoDBClient({ ...LOCAL, endpoint: cloud.dynamodbUrl });
  try {
    for (const [key, spec] of Object.entries(TABLES) as [TableKey, (typeof TABLES)[TableKey]][]) {
      const name = `kmod-${spec.id}`;
      const items = await scanAll(ddb, name);
      const text = tableFile(items);
      const file = `tables/${name}.jsonl`;
      writeFileSync(join(out, file), text);
      manifest.tables.push({ key, name, file, items: items.length, sha256: sha256Of(text) });
      o.log(`table   ${name.padEnd(24)} ${String(items.length).padStart(6)} items  sha256 ${sha256Of(text).slice(0, 12)}…`);
    }
  } finally {
    ddb.destroy();
  }

  const s3 = new S3Client({ ...LOCAL, endpoint: cloud.servicesUrl, forcePathStyle: true });
  try {
    for (const { Name: bucket } of (await s3.send(new ListBucketsCommand({}))).Buckets ?? []) {
      if (!bucket) continue;
      let ContinuationToken: string | undefined;
      let count = 0;
      do {
        const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken }));
        for (const { Key: key } of page.Contents ?? []) {
          if (!key) continue;
          const body = await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body?.transformToByteArray();
          const bytes = Buffer.from(body ?? []);
          // Keys are stored by their base64url form: any key, `..` and all, is one safe file name.
          const file = `s3/${bucket}/${Buffer.from(key).toString('base64url')}`;
          mkdirSync(dirname(join(out, file)), { recursive: true });
          writeFileSync(join(out, file), bytes);
          manifest.objects.push({ bucket, key, file, bytes: bytes.length, sha256: sha256Of(bytes) });
          count++;
        }
        ContinuationToken = page.NextContinuationToken;
      } while (ContinuationToken);
      o.log(`bucket  ${bucket.padEnd(24)} ${String(count).padStart(6)} objects`);
    }
  } finally {
    s3.destroy();
  }

  let copied = 0;
  for (const rel of STATE_FILES.flatMap((p) => filesUnder(dataDir, p))) {
    const target = join(out, 'files', rel);
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(join(dataDir, rel), target);
    const bytes = readFileSync(target);
    manifest.files.push({ path: relative(dataDir, join(dataDir, rel)), bytes: bytes.length, sha256: sha256Of(bytes) });
    copied++;
  }
  o.log(`files   ${String(copied).padStart(31)} files (keys, PKI, issuer key, SNS, simulated fleet, executions)`);
  // Something started while the tables were read: the backup would hold it half.
  const after = await inFlight(cloud.dynamodbUrl, dataDir);
  if (after.length) throw new Error(`${describe(after)} started during the backup: take it again when the cloud is quiet (${out} is incomplete)`);
  writeFileSync(join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  o.log(`wrote ${join(out, 'manifest.json')}`);
  return manifest;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const { values } = parseArgs({ options: { out: { type: 'string' }, 'data-dir': { type: 'string' }, help: { type: 'boolean' } } });
  if (values.help || !values.out) {
    console.error('usage: npm run backup -- --out <new dir> [--data-dir <data dir> (default KMOD_DATA_DIR or .local)]');
    process.exit(values.help ? 0 : 2);
  }
  backup({ dataDir: values['data-dir'] ?? process.env.KMOD_DATA_DIR ?? '.local', out: values.out, log: (l) => console.log(l) }).catch((e: Error) => {
    console.error(`backup failed: ${e.message}`);
    process.exit(1);
  });
}
