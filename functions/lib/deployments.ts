import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { GetCommand, QueryCommand, type QueryCommandInput } from '@aws-sdk/lib-dynamodb';
import type { Environment } from '../domain/environments.ts';
import { TERMINAL_STATUSES, type DeploymentRecord, type DeploymentStatus, type StageName, type StageRecord } from '../domain/deployment.ts';
import { config } from './config.ts';
import { auditItem, deploymentSubject, type AuditEvent } from './audit.ts';
import { dynamo } from './aws.ts';
import { CONDITIONS, conditionInput } from './conditions.ts';
import { counterIncrement, histogramIncrement, Increments, metricsUpdate, publishCommitted } from './metrics.ts';
import { tableName } from './tables.ts';
import { transactWrite } from './auditChain.ts';

const LIST_KEY = 'deployments';

/**
 * The pipeline execution's ARN: the execution is named after the deployment, so it is known
 * before the start (recorded with the request); derived for records written before that.
 */
export function pipelineExecutionArn(d: Pick<DeploymentRecord, 'executionId' | 'executionArn'>): string {
  return d.executionArn ?? `${config.pipelineStateMachineArn().replace(':stateMachine:', ':execution:')}:${d.executionId}`;
}

export async function getDeployment(executionId: string): Promise<DeploymentRecord | undefined> {
  const r = await dynamo().send(new GetCommand({ TableName: tableName('deployments'), Key: { executionId }, ConsistentRead: true }));
  return r.Item as DeploymentRecord | undefined;
}

export async function requireDeployment(executionId: string): Promise<DeploymentRecord> {
  const d = await getDeployment(executionId);
  if (!d) throw new Error(`deployment ${executionId} does not exist`);
  return d;
}

export function isConditionFailure(e: unknown): boolean {
  if (e instanceof TransactionCanceledException) {
    return (e.CancellationReasons ?? []).some((r) => r.Code === 'ConditionalCheckFailed');
  }
  return (e as { name?: string }).name === 'ConditionalCheckFailedException';
}

export function newDeploymentItem(d: DeploymentRecord) {
  return { TableName: tableName('deployments'), Item: { ...d, listKey: LIST_KEY }, ...conditionInput(CONDITIONS.notExists('executionId')) };
}

export interface ListFilter {
  status?: DeploymentStatus;
  moduleName?: string;
  targetEnvironment?: Environment;
  requestedBy?: string;
  limit: number;
  cursor?: Record<string, unknown>;
}

export async function listDeployments(f: ListFilter): Promise<{ items: DeploymentRecord[]; cursor?: Record<string, unknown> }> {
  const names: Record<string, string> = {};
  const values: Record<string, unknown> = {};
  const filters: string[] = [];
  for (const key of ['status', 'targetEnvironment', 'requestedBy'] as const) {
    const v = f[key];
    if (v === undefined) continue;
    names[`#${key}`] = key;
    values[`:${key}`] = v;
    filters.push(`#${key} = :${key}`);
  }
  const byModule = f.moduleName !== undefined;
  const input: QueryCommandInput = {
    TableName: tableName('deployments'),
    IndexName: byModule ? 'byModule' : 'byCreatedAt',
    KeyConditionExpression: byModule ? 'moduleName = :pk' : 'listKey = :pk',
    ExpressionAttributeValues: { ':pk': byModule ? f.moduleName : LIST_KEY, ...values },
    ExpressionAttributeNames: Object.keys(names).length ? names : undefined,
    FilterExpression: filters.length ? filters.join(' AND ') : undefined,
    ScanIndexForward: false,
    ExclusiveStartKey: f.cursor,
  };
  // A filter can leave a page short: keep reading until the page is full or the index ends. The
  // cursor is the key of the last item returned, so nothing is skipped or repeated.
  const items: DeploymentRecord[] = [];
  let start = f.cursor;
  for (;;) {
    const r = await dynamo().send(
      new QueryCommand({ ...input, ExclusiveStartKey: start, Limit: Math.max(f.limit - items.length, 1) * (filters.length ? 4 : 1) }),
    );
    const page = r.Items ?? [];
    for (let i = 0; i < page.length; i++) {
      items.push(page[i] as DeploymentRecord);
      if (items.length === f.limit) {
        const more = i < page.length - 1 || r.LastEvaluatedKey !== undefined;
        return { items, cursor: more ? keyOf(page[i], byModule) : undefined };
      }
    }
    if (!r.LastEvaluatedKey) return { items };
    start = r.LastEvaluatedKey;
  }
}

function keyOf(item: Record<string, unknown>, byModule: boolean): Record<string, unknown> {
  return byModule
    ? { executionId: item.executionId, moduleName: item.moduleName, createdAt: item.createdAt }
    : { executionId: item.executionId, listKey: item.listKey, createdAt: item.createdAt };
}

export interface DeploymentUpdate {
  UpdateExpression: string;
  ConditionExpression: string;
  ExpressionAttributeNames?: Record<string, string>;
  ExpressionAttributeValues?: Record<string, unknown>;
}

/**
 * Every change of a deployment record goes with its audit event, in one transaction, under a
 * condition (so retries and races change nothing twice). Returns false when the condition failed.
 */
export async function updateDeploymentAudited(executionId: string, update: DeploymentUpdate, event: AuditEvent, metrics?: Increments): Promise<boolean> {
  const items = [...auditedUpdateItems(executionId, update, event), ...(metrics?.size ? [{ Update: metricsUpdate(metrics) }] : [])];
  for (let attempt = 0; ; attempt++) {
    try {
      await transactWrite(items);
      if (metrics) publishCommitted(metrics);
      return true;
    } catch (e) {
      if (isConditionFailure(e)) return false;
      // A cancelled transaction wrote nothing: a conflict on a shared metrics shard is retried.
      if (attempt < 4 && isTransactionConflict(e)) {
        await new Promise((r) => setTimeout(r, 20 * 2 ** attempt + Math.random() * 20));
        continue;
      }
      throw e;
    }
  }
}

function isTransactionConflict(e: unknown): boolean {
  return e instanceof TransactionCanceledException && (e.CancellationReasons ?? []).some((r) => r.Code === 'TransactionConflict');
}

/** The two transaction items of an audited deployment update, for callers that add their own. */
export function auditedUpdateItems(executionId: string, update: DeploymentUpdate, event: AuditEvent) {
  return [{ Update: { TableName: tableName('deployments'), Key: { executionId }, ...update } }, { Put: auditItem(event) }];
}

const OUTCOME_COUNTERS = {
  Succeeded: 'kmod_deployments_succeeded_total',
  Failed: 'kmod_deployments_failed_total',
  RolledBack: 'kmod_deployments_rolled_back_total',
  Cancelled: 'kmod_deployments_cancelled_total',
} as const;

/**
 * The counter a deployment reaching `status` adds to, labelled with its target environment and
 * that environment's strategy (both fixed when the deployment is created, so reading them before
 * the transaction is safe). Nothing for a non-terminal status.
 */
async function outcomeIncrement(executionId: string, status: DeploymentStatus | undefined, into: Increments = new Increments()): Promise<Increments> {
  if (!status || !(status in OUTCOME_COUNTERS)) return into;
  const d = await getDeployment(executionId);
  if (!d) return into;
  const target = Object.values(d.stages ?? {}).find((s) => s.environment === d.targetEnvironment);
  return counterIncrement(
    OUTCOME_COUNTERS[status as keyof typeof OUTCOME_COUNTERS],
    {
      environment: d.targetEnvironment,
      strategy: target?.strategy ?? 'none',
    },
    1,
    into,
  );
}

/** Run a conditional write whose failed condition means "nothing to do" (someone else holds it, a retry). */
export async function ignoreConditionFailure(write: Promise<unknown>): Promise<void> {
  try {
    await write;
  } catch (e) {
    if (!isConditionFailure(e)) throw e;
  }
}

const terminal = TERMINAL_STATUSES.map((_, i) => `:t${i}`);
const terminalValues = Object.fromEntries(TERMINAL_STATUSES.map((s, i) => [`:t${i}`, s]));

/**
 * Update one stage and, where given, the deployment status, with an audit event, in one
 * transaction. A finished deployment is never changed again, and a stage already in `status`
 * is left as it is, so Step Functions retries are harmless. Returns false when nothing changed.
 */
export async function updateStage(
  executionId: string,
  stage: StageName,
  patch: Partial<StageRecord> & { status: StageRecord['status'] },
  opts: { deploymentStatus?: DeploymentStatus; actor?: string; failure?: DeploymentRecord['failure'] } = {},
): Promise<boolean> {
  const now = new Date().toISOString();
  const sets = ['updatedAt = :now'];
  const names: Record<string, string> = { '#stages': 'stages', '#stage': stage, '#status': 'status', '#sstatus': 'status', '#rollback': 'rollback' };
  const values: Record<string, unknown> = { ':now': now, ':sstatus': patch.status, ':rrunning': 'Running', ...terminalValues };
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) continue;
    names[`#f_${k}`] = k;
    values[`:f_${k}`] = v;
    sets.push(`#stages.#stage.#f_${k} = :f_${k}`);
  }
  if (opts.deploymentStatus) {
    values[':dstatus'] = opts.deploymentStatus;
    sets.push('#status = :dstatus');
  }
  if (opts.failure) {
    values[':failure'] = opts.failure;
    sets.push('failure = if_not_exists(failure, :failure)');
  }
  const metrics = await outcomeIncrement(executionId, opts.deploymentStatus);
  if (patch.durationMs !== undefined && patch.status !== 'Running') {
    histogramIncrement('kmod_stage_duration_seconds', { stage, status: patch.status }, patch.durationMs / 1000, metrics);
  }
  return updateDeploymentAudited(
    executionId,
    {
      UpdateExpression: `SET ${sets.join(', ')}`,
      // A finished deployment changes again only while an on-demand rollback runs.
      ConditionExpression: `attribute_exists(executionId) AND (NOT (#status IN (${terminal.join(', ')})) OR #rollback.#status = :rrunning) AND #stages.#stage.#sstatus <> :sstatus`,
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
    },
    {
      subject: deploymentSubject(executionId),
      category: 'stage',
      action: `stage.${patch.status.toLowerCase()}`,
      actor: opts.actor ?? 'system:pipeline',
      details: { stage, ...patch, ...(opts.deploymentStatus ? { deploymentStatus: opts.deploymentStatus } : {}) },
    },
    metrics,
  );
}

/** Move the deployment to a new status (with audit), unless it already finished. */
export async function setDeploymentStatus(
  executionId: string,
  status: DeploymentStatus,
  opts: { actor?: string; failure?: DeploymentRecord['failure'] } = {},
): Promise<boolean> {
  const now = new Date().toISOString();
  const values: Record<string, unknown> = { ':now': now, ':status': status, ...terminalValues };
  const sets = ['updatedAt = :now', '#status = :status'];
  if (TERMINAL_STATUSES.includes(status)) sets.push('finishedAt = :now');
  if (opts.failure) {
    values[':failure'] = opts.failure;
    sets.push('failure = if_not_exists(failure, :failure)');
  }
  const metrics = await outcomeIncrement(executionId, status);
  return updateDeploymentAudited(
    executionId,
    {
      UpdateExpression: `SET ${sets.join(', ')}`,
      ConditionExpression: `attribute_exists(executionId) AND NOT (#status IN (${terminal.join(', ')})) AND #status <> :status`,
      ExpressionAttributeNames: { '#status': 'status' },
      ExpressionAttributeValues: values,
    },
    {
      subject: deploymentSubject(executionId),
      category: 'deployment',
      action: `deployment.${status.toLowerCase()}`,
      actor: opts.actor ?? 'system:pipeline',
      details: { status, ...(opts.failure ? { failure: opts.failure } : {}) },
    },
    metrics,
  );
}

/** Add to a stage's node counters (used once per batch; the caller guards against double counting). */
export function stageCounterUpdate(
  executionId: string,
  stage: StageName,
  deltas: Partial<Record<'nodesDeployed' | 'nodesFailed' | 'nodesRolledBack', number>>,
) {
  const names: Record<string, string> = { '#stages': 'stages', '#stage': stage };
  const values: Record<string, unknown> = { ':now': new Date().toISOString(), ':zero': 0 };
  // ADD works on top-level attributes only, so nested counters use SET x = if_not_exists(x, 0) + n.
  const sets = ['updatedAt = :now'];
  for (const [k, v] of Object.entries(deltas)) {
    names[`#${k}`] = k;
    values[`:${k}`] = v;
    sets.push(`#stages.#stage.#${k} = if_not_exists(#stages.#stage.#${k}, :zero) + :${k}`);
  }
  return {
    TableName: tableName('deployments'),
    Key: { executionId },
    UpdateExpression: `SET ${sets.join(', ')}`,
    ExpressionAttributeNames: names,
    ExpressionAttributeValues: values,
  };
}

/** Record one entry under a running stage's details (e.g. a canary wave's analysis), audited. */
export async function recordStageDetail(
  executionId: string,
  stage: StageName,
  key: string,
  value: unknown,
  action: string,
  opts: { countFirst?: Increments } = {},
): Promise<void> {
  const write = (count?: Increments) =>
    transactWrite([
      {
        Update: {
          TableName: tableName('deployments'),
          Key: { executionId },
          UpdateExpression: 'SET #stages.#stage.#details.#key = :v, updatedAt = :now',
          ExpressionAttributeNames: { '#stages': 'stages', '#stage': stage, '#details': 'details', '#key': key },
          ExpressionAttributeValues: { ':v': value, ':now': new Date().toISOString() },
          // Counted once: a retried task that records the same detail again counts nothing.
          ...(count ? { ConditionExpression: 'attribute_not_exists(#stages.#stage.#details.#key)' } : {}),
        },
      },
      {
        Put: auditItem({ subject: deploymentSubject(executionId), category: 'stage', action, actor: 'system:pipeline', details: { stage, [key]: value } }),
      },
      ...(count?.size ? [{ Update: metricsUpdate(count) }] : []),
    ]);
  if (!opts.countFirst) {
    await write();
    return;
  }
  try {
    await write(opts.countFirst);
    publishCommitted(opts.countFirst);
  } catch (e) {
    if (!isConditionFailure(e)) throw e;
    // Recorded before (a retry): record what this attempt found, as an uncounted write always did.
    await write();
  }
}
