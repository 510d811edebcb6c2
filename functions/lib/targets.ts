/**
 * The deployment ledger: per deployment and environment, a plan header and one item per batch
 * with each node's previous version and outcome. Rollback reads it to know what to put back.
 */
import { BatchWriteCommand, GetCommand, TransactWriteCommand, UpdateCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { Environment, Strategy } from '../domain/environments.ts';
import type { Colour } from '../domain/strategy.ts';
import type { CanaryBaseline } from '../domain/canary.ts';
import type { NodeAlignment, ServedVersions } from '../domain/blueGreen.ts';
import { dynamo, queryAll } from './aws.ts';
import { isConditionFailure, stageCounterUpdate } from './deployments.ts';
import { tableName, TTL_ATTRIBUTE } from './tables.ts';

export type NodeTargetStatus = 'Pending' | 'Deployed' | 'Failed' | 'RolledBack' | 'RollbackFailed';

export interface NodeTarget {
  previousVersion: string | null;
  status: NodeTargetStatus;
  message?: string;
  /** Blue-Green: the other modules this node changed to carry what the live colour serves. */
  aligned?: NodeAlignment;
}

export interface BatchItem {
  targetKey: string;
  sk: string;
  batch: number;
  nodes: Record<string, NodeTarget>;
  /** Set when a DeployBatch starts calling agents; with no countedAt yet, the batch is in flight. */
  startedAt?: string;
  countedAt?: string;
}

export interface PlanItem {
  targetKey: string;
  sk: 'plan';
  strategy: Strategy;
  batchCount: number;
  nodesTotal: number;
  createdAt: string;
  /** Canary: batch numbers per wave. */
  waves?: number[][];
  /** Blue-Green: the live colour before this deployment, and the one it deploys to. */
  activeColour?: Colour;
  idleColour?: Colour;
  /**
   * Blue-Green: every other module at the version the live colour serves; the idle colour is made
   * to carry these before traffic switches (functions/domain/blueGreen.ts).
   */
  align?: ServedVersions;
  /** Blue-Green: set once traffic moved to the new colour (rollback moves it back). */
  trafficSwitched?: boolean;
  /** Canary: pre-deployment metric averages. */
  baseline?: CanaryBaseline;
  /** Set when a batch failed or rollback began: no further batch may deploy. */
  abortedAt?: string;
  abortReason?: string;
}

const RETENTION_SECONDS = 180 * 86_400;
export const targetKey = (executionId: string, environment: Environment) => `${executionId}#${environment}`;
const batchSk = (i: number) => `batch#${String(i).padStart(6, '0')}`;

export async function getPlan(executionId: string, environment: Environment): Promise<PlanItem | undefined> {
  const r = await dynamo().send(
    new GetCommand({ TableName: tableName('targets'), Key: { targetKey: targetKey(executionId, environment), sk: 'plan' }, ConsistentRead: true }),
  );
  return r.Item as PlanItem | undefined;
}

/** Write the batches, then the plan header last: a plan is complete once its header exists. */
export async function writePlan(
  executionId: string,
  environment: Environment,
  strategy: Strategy,
  batches: { nodeId: string; previousVersion: string | null }[][],
  extra: Pick<PlanItem, 'waves' | 'activeColour' | 'idleColour' | 'baseline' | 'align'> = {},
): Promise<PlanItem> {
  const key = targetKey(executionId, environment);
  const expiresAt = Math.floor(Date.now() / 1000) + RETENTION_SECONDS;
  const items = batches.map((b, i) => ({
    targetKey: key,
    sk: batchSk(i),
    batch: i,
    nodes: Object.fromEntries(b.map((n) => [n.nodeId, { previousVersion: n.previousVersion, status: 'Pending' }])),
    [TTL_ATTRIBUTE]: expiresAt,
  }));
  for (let i = 0; i < items.length; i += 25) {
    let pending = items.slice(i, i + 25).map((Item) => ({ PutRequest: { Item } }));
    while (pending.length) {
      const r = await dynamo().send(new BatchWriteCommand({ RequestItems: { [tableName('targets')]: pending } }));
      pending = (r.UnprocessedItems?.[tableName('targets')] ?? []) as typeof pending;
    }
  }
  const plan: PlanItem = {
    targetKey: key,
    sk: 'plan',
    strategy,
    batchCount: batches.length,
    nodesTotal: batches.flat().length,
    createdAt: new Date().toISOString(),
    ...extra,
  };
  try {
    await dynamo().send(
      new PutCommand({ TableName: tableName('targets'), Item: { ...plan, [TTL_ATTRIBUTE]: expiresAt }, ConditionExpression: 'attribute_not_exists(sk)' }),
    );
    return plan;
  } catch (e) {
    if (isConditionFailure(e)) return (await getPlan(executionId, environment))!;
    throw e;
  }
}

export async function getBatch(executionId: string, environment: Environment, batch: number): Promise<BatchItem> {
  const r = await dynamo().send(
    new GetCommand({ TableName: tableName('targets'), Key: { targetKey: targetKey(executionId, environment), sk: batchSk(batch) }, ConsistentRead: true }),
  );
  if (!r.Item) throw new Error(`batch ${batch} of ${executionId} in ${environment} does not exist`);
  return r.Item as BatchItem;
}

export async function listBatches(executionId: string, environment: Environment): Promise<BatchItem[]> {
  return queryAll<BatchItem>({
    TableName: tableName('targets'),
    KeyConditionExpression: 'targetKey = :k AND begins_with(sk, :b)',
    ExpressionAttributeValues: { ':k': targetKey(executionId, environment), ':b': 'batch#' },
    ConsistentRead: true,
  });
}

/**
 * Store a batch's node outcomes and add them to the stage counters, once: the batch is marked
 * counted in the same transaction, so a retried task does not count twice.
 */
export async function recordBatchOutcome(
  executionId: string,
  environment: Environment,
  batch: BatchItem,
  nodes: Record<string, NodeTarget>,
  counters: Partial<Record<'nodesDeployed' | 'nodesFailed', number>>,
): Promise<void> {
  const update = {
    TableName: tableName('targets'),
    Key: { targetKey: batch.targetKey, sk: batch.sk },
    UpdateExpression: 'SET nodes = :n, countedAt = :now',
    ConditionExpression: 'attribute_not_exists(countedAt)',
    ExpressionAttributeValues: { ':n': nodes, ':now': new Date().toISOString() },
  };
  try {
    await dynamo().send(new TransactWriteCommand({ TransactItems: [{ Update: update }, { Update: stageCounterUpdate(executionId, environment, counters) }] }));
  } catch (e) {
    if (!isConditionFailure(e)) throw e;
    // Counted before (a retry): keep the node outcomes current without counting again.
    await dynamo().send(
      new UpdateCommand({ ...update, UpdateExpression: 'SET nodes = :n', ConditionExpression: undefined, ExpressionAttributeValues: { ':n': nodes } }),
    );
  }
}

export async function setBatchNodes(batch: BatchItem, nodes: Record<string, NodeTarget>): Promise<void> {
  await dynamo().send(
    new UpdateCommand({
      TableName: tableName('targets'),
      Key: { targetKey: batch.targetKey, sk: batch.sk },
      UpdateExpression: 'SET nodes = :n',
      ExpressionAttributeValues: { ':n': nodes },
    }),
  );
}

export async function markTrafficSwitched(executionId: string, environment: Environment, switched: boolean): Promise<void> {
  await dynamo().send(
    new UpdateCommand({
      TableName: tableName('targets'),
      Key: { targetKey: targetKey(executionId, environment), sk: 'plan' },
      UpdateExpression: 'SET trafficSwitched = :s',
      ExpressionAttributeValues: { ':s': switched },
    }),
  );
}

/**
 * Stop an environment's deployment: once a batch has failed, no other batch may deploy, even one
 * already queued or in flight in a parallel Map (on AWS a Map stops scheduling, but invocations
 * already running finish; the local interpreter may even start queued ones).
 */
export async function abortPlan(executionId: string, environment: Environment, reason: string): Promise<void> {
  try {
    await dynamo().send(
      new UpdateCommand({
        TableName: tableName('targets'),
        Key: { targetKey: targetKey(executionId, environment), sk: 'plan' },
        UpdateExpression: 'SET abortedAt = :t, abortReason = :r',
        ConditionExpression: 'attribute_exists(sk) AND attribute_not_exists(abortedAt)',
        ExpressionAttributeValues: { ':t': new Date().toISOString(), ':r': reason },
      }),
    );
  } catch (e) {
    if (!isConditionFailure(e)) throw e;
  }
}

/** Mark a batch in flight, so a rollback that starts meanwhile waits for its outcome. */
export async function markBatchStarted(batch: BatchItem): Promise<void> {
  await dynamo().send(
    new UpdateCommand({
      TableName: tableName('targets'),
      Key: { targetKey: batch.targetKey, sk: batch.sk },
      UpdateExpression: 'SET startedAt = if_not_exists(startedAt, :t)',
      ExpressionAttributeValues: { ':t': new Date().toISOString() },
    }),
  );
}
