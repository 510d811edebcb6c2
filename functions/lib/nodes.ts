import { BatchGetCommand, GetCommand, QueryCommand, UpdateCommand, type BatchGetCommandOutput } from '@aws-sdk/lib-dynamodb';
import type { Environment } from '../domain/environments.ts';
import { dynamo } from './aws.ts';
import { tableName } from './tables.ts';
import type { HealthReport, MetricsReport } from '../agent/protocol.ts';

export interface NodeRecord {
  environment: Environment;
  nodeId: string;
  /** Base URL of the node's agent. */
  address: string;
  colour?: 'blue' | 'green';
  modules: Record<string, { version: string; previousVersion?: string; updatedAt: string }>;
  registeredAt: string;
  lastHealth?: Pick<HealthReport, 'status' | 'reasons' | 'at'>;
  lastMetrics?: MetricsReport;
}

export async function listNodes(environment: Environment): Promise<NodeRecord[]> {
  const items: NodeRecord[] = [];
  let cursor: Record<string, unknown> | undefined;
  do {
    const r = await dynamo().send(
      new QueryCommand({
        TableName: tableName('nodes'),
        KeyConditionExpression: 'environment = :e',
        ExpressionAttributeValues: { ':e': environment },
        ExclusiveStartKey: cursor,
      }),
    );
    items.push(...((r.Items ?? []) as NodeRecord[]));
    cursor = r.LastEvaluatedKey;
  } while (cursor);
  return items;
}

export async function getNode(environment: Environment, nodeId: string): Promise<NodeRecord | undefined> {
  const r = await dynamo().send(new GetCommand({ TableName: tableName('nodes'), Key: { environment, nodeId }, ConsistentRead: true }));
  return r.Item as NodeRecord | undefined;
}

/** Several nodes of one environment by id, 100 keys per BatchGetItem (unknown ids are absent). */
export async function getNodes(environment: Environment, nodeIds: string[]): Promise<Map<string, NodeRecord>> {
  const out = new Map<string, NodeRecord>();
  const table = tableName('nodes');
  for (let i = 0; i < nodeIds.length; i += 100) {
    let keys: Record<string, unknown>[] | undefined = nodeIds.slice(i, i + 100).map((nodeId) => ({ environment, nodeId }));
    for (let attempt = 0; keys?.length; attempt++) {
      const r: BatchGetCommandOutput = await dynamo().send(new BatchGetCommand({ RequestItems: { [table]: { Keys: keys, ConsistentRead: true } } }));
      for (const item of r.Responses?.[table] ?? []) out.set(String(item.nodeId), item as NodeRecord);
      keys = r.UnprocessedKeys?.[table]?.Keys;
      if (keys?.length) await new Promise((res) => setTimeout(res, Math.min(1000, 50 * 2 ** attempt)));
    }
  }
  return out;
}

/** Record the version a node now runs (after a deploy or rollback the agent confirmed). */
export async function recordNodeModule(environment: Environment, nodeId: string, module: string, version: string | null, previousVersion?: string) {
  const common = {
    TableName: tableName('nodes'),
    Key: { environment, nodeId },
    ConditionExpression: 'attribute_exists(nodeId)',
    ExpressionAttributeNames: { '#m': module },
  };
  await dynamo().send(
    version === null
      ? new UpdateCommand({ ...common, UpdateExpression: 'REMOVE modules.#m' })
      : new UpdateCommand({
          ...common,
          UpdateExpression: 'SET modules.#m = :v',
          ExpressionAttributeValues: { ':v': { version, previousVersion, updatedAt: new Date().toISOString() } },
        }),
  );
}

export async function recordNodeHealth(environment: Environment, nodeId: string, health: HealthReport) {
  await dynamo().send(
    new UpdateCommand({
      TableName: tableName('nodes'),
      Key: { environment, nodeId },
      UpdateExpression: 'SET lastHealth = :h, lastMetrics = :m',
      ConditionExpression: 'attribute_exists(nodeId)',
      ExpressionAttributeValues: { ':h': { status: health.status, reasons: health.reasons, at: health.at }, ':m': health.metrics },
    }),
  );
}
