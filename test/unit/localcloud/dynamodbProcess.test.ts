import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, PutCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, describe, expect, it } from 'vitest';
import { EATMYDATA_PATHS, launchDynamoDbLocal, withoutFsync, type LocalDynamo } from '../../../localcloud/dynamodbProcess.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function client(endpoint: string) {
  return DynamoDBDocumentClient.from(new DynamoDBClient({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } }));
}

/** The JVM under the watchdog shell, and whether libeatmydata is mapped into it. */
function jvm(dynamo: LocalDynamo): { pid: number; preloaded: boolean } {
  const sh = dynamo.process.pid!;
  const children = readFileSync(`/proc/${sh}/task/${sh}/children`, 'utf8').trim().split(/\s+/).map(Number);
  const pid = children.find((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').startsWith('java'))!;
  return { pid, preloaded: readFileSync(`/proc/${pid}/maps`, 'utf8').includes('libeatmydata') };
}

describe('withoutFsync', () => {
  it('preloads the library where it is installed, unless KMOD_DYNAMODB_FSYNC=1', () => {
    expect(withoutFsync({}, (p) => p === EATMYDATA_PATHS[1])).toBe(EATMYDATA_PATHS[1]);
    expect(withoutFsync({}, () => false)).toBeUndefined();
    expect(withoutFsync({ KMOD_DYNAMODB_FSYNC: '1' }, () => true)).toBeUndefined();
    expect(withoutFsync({ KMOD_DYNAMODB_FSYNC: '0' }, () => true)).toBe(EATMYDATA_PATHS[0]);
  });
});

// .ci/run installs Debian's eatmydata; a developer machine without it runs the JVM with every sync.
const installed = EATMYDATA_PATHS.some((p) => existsSync(p));
it('CI has libeatmydata installed', () => {
  if (process.env.CI) expect(installed).toBe(true);
});

describe.runIf(installed)('DynamoDB Local on disk without fsync', () => {
  it('runs the JVM with the library, and a killed JVM loses no acknowledged write', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'kmod-nofsync-'));
    dirs.push(dataDir);
    const first = await (await launchDynamoDbLocal(dataDir)).ready;
    expect(first.syncsWrites).toBe(false);
    const { pid, preloaded } = jvm(first);
    expect(preloaded).toBe(true);
    const ddb = client(first.endpoint);
    await ddb.send(
      new CreateTableCommand({
        TableName: 'crash-test',
        AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
        ProvisionedThroughput: { ReadCapacityUnits: 10, WriteCapacityUnits: 10 },
      }),
    );
    for (let i = 0; i < 200; i += 20)
      await Promise.all(Array.from({ length: 20 }, (_, j) => ddb.send(new PutCommand({ TableName: 'crash-test', Item: { pk: `item-${i + j}`, n: i + j } }))));
    ddb.destroy();
    // A crash: the JVM is killed with no chance to flush or close its database.
    process.kill(pid, 'SIGKILL');
    await new Promise((r) => first.process.once('exit', r));

    const second = await (await launchDynamoDbLocal(dataDir)).ready;
    const again = client(second.endpoint);
    const items = (await again.send(new ScanCommand({ TableName: 'crash-test' }))).Items ?? [];
    again.destroy();
    await second.stop();
    expect(items.map((i) => i.n).sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i));
  }, 120_000);

  it('syncs every write with KMOD_DYNAMODB_FSYNC=1', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'kmod-fsync-'));
    dirs.push(dataDir);
    process.env.KMOD_DYNAMODB_FSYNC = '1';
    try {
      const dynamo = await (await launchDynamoDbLocal(dataDir)).ready;
      expect(dynamo.syncsWrites).toBe(true);
      expect(jvm(dynamo).preloaded).toBe(false);
      await dynamo.stop();
    } finally {
      delete process.env.KMOD_DYNAMODB_FSYNC;
    }
  }, 60_000);
});
