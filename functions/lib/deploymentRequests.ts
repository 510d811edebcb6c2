/**
 * The two requests that start work on a module: a new deployment and an on-demand rollback. Each
 * is one transaction (the deployment record or its rollback, the audit event, the module's locks,
 * the idempotency key) and then the start of its state machine. Outcomes the caller answers
 * differently come back as values; anything unexpected is thrown.
 */
import { counterIncrement, type Increments, metricsUpdate, publishCommitted } from './metrics.ts';
import type { UnreachablePolicy } from '../domain/membership.ts';
import { createHash, randomBytes } from 'node:crypto';
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { StartExecutionCommand } from '@aws-sdk/client-sfn';
import { GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { initialStages, newExecutionId, type DeploymentRecord } from '../domain/deployment.ts';
import { environmentsUpTo, GATED_ENVIRONMENTS, type Environment } from '../domain/environments.ts';
import { auditItem, deploymentSubject, type AuditEvent } from './audit.ts';
import { dynamo, stepFunctions } from './aws.ts';
import { CONDITIONS, conditionInput, or, withCondition } from './conditions.ts';
import { config } from './config.ts';
import { auditedUpdateItems, getDeployment, newDeploymentItem, pipelineExecutionArn, setDeploymentStatus } from './deployments.ts';
import { describeHeldLock, heldLock, lockItems, releaseLocks, untagged, type HeldLock, type TaggedItem } from './locks.ts';
import { degradedCheckItems, getDegraded } from './degraded.ts';
import type { DegradedMark } from '../domain/degraded.ts';
import { tableName, TTL_ATTRIBUTE } from './tables.ts';
import { transactWrite } from './auditChain.ts';
import { currentCorrelation } from './traceContext.ts';

/** The correlation id of the API request in hand (lib/middleware/correlation.ts), if this runs in one. */
const correlationIdInHand = (): string | undefined => currentCorrelation().correlationId;

const REQUEST_CONDITIONS = {
  newKey: CONDITIONS.notExists('key'),
  // Exactly one rollback at a time: the first request wins; a failed one may be retried.
  rollbackMayStart: or(CONDITIONS.notExists('rollback'), CONDITIONS.equals(['rollback', 'status'], 'Failed')),
  // A cancel's rollback starts once, whoever (the cancel request or the reconciler) gets there first.
  cancelRollbackMayStart: CONDITIONS.notExists('rollback'),
};

export interface DeploymentRequest {
  moduleName: string;
  version: string;
  targetEnvironment: Environment;
  metadata?: Record<string, string>;
  /** Enrolled nodes that stopped heartbeating: fail the plan (default) or leave them unchanged. */
  unreachableNodes?: UnreachablePolicy;
}

export type DeploymentRequestOutcome =
  | { outcome: 'started' | 'replayed'; executionId: string; targetEnvironment: Environment }
  | { outcome: 'keyReused' }
  | { outcome: 'unknownModule' }
  | { outcome: 'locked'; lock: HeldLock }
  | DegradedOutcome;

/** Refused: the environment is Degraded for the module (a rollback could not finish there). */
export type DegradedOutcome = { outcome: 'degraded'; moduleName: string; environment: Environment; mark?: DegradedMark };

/** A transaction item, tagged with the lock it takes, the Degraded mark it checks for, or the module version it needs. */
type RequestItem = TaggedItem & { degraded?: { moduleName: string; environment: Environment }; moduleVersion?: true };

/** The module version a deployment needs, as a condition of its transaction (registered versions are never deleted). */
function moduleVersionCheck(moduleName: string, version: string) {
  return {
    ConditionCheck: {
      TableName: tableName('modules'),
      Key: { moduleName, version },
      ConditionExpression: 'attribute_exists(moduleName)',
    },
  };
}

/** Whether the transaction was refused because the module version is not registered. */
const refusedUnknownModule = (items: readonly RequestItem[], reasons: readonly { Code?: string }[]) =>
  reasons.some((r, i) => r.Code === 'ConditionalCheckFailed' && items[i]?.moduleVersion);

/** The environment whose Degraded check cancelled the transaction, with its mark as it is now. */
async function degradedRefusal(items: readonly RequestItem[], reasons: readonly { Code?: string }[]): Promise<DegradedOutcome | undefined> {
  const i = reasons.findIndex((r, index) => r.Code === 'ConditionalCheckFailed' && items[index]?.degraded !== undefined);
  if (i < 0) return undefined;
  const { moduleName, environment } = items[i].degraded!;
  return { outcome: 'degraded', moduleName, environment, mark: (await getDegraded(environment))[moduleName] };
}

interface Idempotency {
  /** The caller's key as sent (recorded in the audit event). */
  given: string;
  /** Keys are per user: the stored key is `<userId>#<key>`. */
  key: string;
  bodyHash: string;
}

/**
 * Record a deployment, take its locks and start the pipeline. `request` is hashed as given, so a
 * retry with the same Idempotency-Key must send the same request to be answered as the first was.
 */
export async function requestDeployment(request: DeploymentRequest, by: { requestedBy: string; idempotencyKey?: string }): Promise<DeploymentRequestOutcome> {
  const idem: Idempotency | undefined =
    by.idempotencyKey === undefined
      ? undefined
      : {
          given: by.idempotencyKey,
          key: `${by.requestedBy}#${by.idempotencyKey}`,
          bodyHash: createHash('sha256').update(JSON.stringify(request)).digest('hex'),
        };
  const prior = idem && (await priorRequest(idem));
  if (prior) return prior;

  const now = new Date();
  const executionId = newExecutionId(now, randomBytes(6).toString('hex'));
  const record: DeploymentRecord = {
    executionId,
    // Known before the start (the execution is named after the deployment): no write after it.
    executionArn: pipelineExecutionArn({ executionId }),
    moduleName: request.moduleName,
    version: request.version,
    targetEnvironment: request.targetEnvironment,
    status: 'Pending',
    requestedBy: by.requestedBy,
    // The request's id (set by the API's correlation middleware), so the deployment's tasks log it.
    ...(correlationIdInHand() ? { correlationId: correlationIdInHand() } : {}),
    createdAt: now.toISOString(),
    updatedAt: now.toISOString(),
    metadata: request.metadata,
    unreachableNodes: request.unreachableNodes ?? 'fail',
    ...initialStages(request.targetEnvironment),
  };
  const started = counterIncrement('kmod_deployments_started_total', { environment: record.targetEnvironment });
  const items = deploymentItems(record, idem, now, started);
  const cancelled = await transactRetryingConflicts(items);
  if (cancelled) {
    // A concurrent request with the same key won the race: answer as it did.
    const winner = idem && (await priorRequest(idem));
    if (winner) return winner;
    if (refusedUnknownModule(items, cancelled.CancellationReasons ?? [])) return { outcome: 'unknownModule' };
    const degraded = await degradedRefusal(items, cancelled.CancellationReasons ?? []);
    if (degraded) return degraded;
    const held = heldLock(items, cancelled.CancellationReasons ?? []);
    if (held) return { outcome: 'locked', lock: await describeHeldLock(held) };
    throw cancelled;
  }
  publishCommitted(started);
  await startPipeline(record);
  return { outcome: 'started', executionId: record.executionId, targetEnvironment: record.targetEnvironment };
}

/**
 * The deployment record, its audit event, the idempotency key, (one deployment at a time) every
 * environment's lock, and for each environment the check that it is not Degraded for the module.
 */
function deploymentItems(record: DeploymentRecord, idem: Idempotency | undefined, now: Date, started: Increments): RequestItem[] {
  const { executionId, moduleName, version, targetEnvironment } = record;
  const event = { moduleName, version, targetEnvironment, idempotencyKey: idem?.given, unreachableNodes: record.unreachableNodes };
  return [
    { item: { Put: newDeploymentItem(record) } },
    {
      item: {
        Put: auditItem({
          subject: deploymentSubject(executionId),
          category: 'deployment',
          action: 'deployment.requested',
          actor: record.requestedBy,
          details: event,
        }),
      },
    },
    ...(idem
      ? [
          {
            item: {
              Put: {
                TableName: tableName('idempotency'),
                Item: {
                  key: idem.key,
                  executionId,
                  bodyHash: idem.bodyHash,
                  [TTL_ATTRIBUTE]: Math.floor(now.getTime() / 1000) + config.idempotencyTtlSeconds(),
                },
                ...conditionInput(REQUEST_CONDITIONS.newKey),
              },
            },
          },
        ]
      : []),
    ...lockItems(moduleName, environmentsUpTo(targetEnvironment), executionId),
    ...degradedCheckItems(moduleName, environmentsUpTo(targetEnvironment)),
    // The version must be registered: checked in the transaction rather than read before it (one call fewer).
    { item: moduleVersionCheck(moduleName, version), moduleVersion: true },
    // Counted in the same transaction as the record it counts (docs/adr/0027-prometheus-metrics.md); last, so
    // the cancellation reasons of the items above keep their positions.
    { item: { Update: metricsUpdate(started) } },
  ];
}

/**
 * Write the items, retrying a few times when DynamoDB cancels for a conflicting concurrent
 * transaction (not a failed condition). Returns the cancellation that was not retried.
 */
async function transactRetryingConflicts(items: readonly TaggedItem[]): Promise<TransactionCanceledException | undefined> {
  for (let attempt = 0; ; attempt++) {
    try {
      await transactWrite(untagged(items));
      return undefined;
    } catch (e) {
      if (!(e instanceof TransactionCanceledException)) throw e;
      if (!(e.CancellationReasons ?? []).some((r) => r.Code === 'TransactionConflict') || attempt >= 5) return e;
      await new Promise((r) => setTimeout(r, 20 + Math.random() * 80 * (attempt + 1)));
    }
  }
}

/** The answer a request with this idempotency key already got, if one was made. */
async function priorRequest(idem: Idempotency): Promise<DeploymentRequestOutcome | undefined> {
  const r = await dynamo().send(new GetCommand({ TableName: tableName('idempotency'), Key: { key: idem.key }, ConsistentRead: true }));
  if (!r.Item) return undefined;
  if (r.Item.bodyHash !== idem.bodyHash) return { outcome: 'keyReused' };
  const d = await getDeployment(String(r.Item.executionId));
  return d && { outcome: 'replayed', executionId: d.executionId, targetEnvironment: d.targetEnvironment };
}

/** Start the pipeline; if that fails, the deployment fails and gives its locks back (then the error is thrown). */
async function startPipeline(record: DeploymentRecord): Promise<void> {
  const { executionId, moduleName, version, targetEnvironment } = record;
  try {
    const started = await stepFunctions().send(
      new StartExecutionCommand({
        stateMachineArn: config.pipelineStateMachineArn(),
        name: executionId,
        input: JSON.stringify({
          executionId,
          // Passed to every task by the state machines (each state's Parameters): always present, as JSONPath needs.
          correlationId: record.correlationId ?? executionId,
          moduleName,
          version,
          targetEnvironment,
          // Read by the approval gates' TimeoutSecondsPath: the expiry is the state machine's own.
          approvalTimeoutSeconds: Object.fromEntries(GATED_ENVIRONMENTS.map((e) => [e, config.approvalTimeoutSeconds(e)])),
        }),
      }),
    );
    // Recorded with the request; only a service that named it otherwise would need it written again.
    if (started.executionArn !== record.executionArn)
      await dynamo().send(
        new UpdateCommand({
          TableName: tableName('deployments'),
          Key: { executionId },
          UpdateExpression: 'SET executionArn = :arn',
          ExpressionAttributeValues: { ':arn': started.executionArn },
        }),
      );
  } catch (e) {
    await setDeploymentStatus(executionId, 'Failed', {
      failure: { code: 'StartFailed', message: `the pipeline could not be started: ${(e as Error).message}` },
    });
    await releaseLocks(moduleName, environmentsUpTo(targetEnvironment), executionId);
    throw e;
  }
}

export interface RollbackRequest {
  requestedBy: string;
  reason?: string;
  /** The environments to roll back, in order (see changedEnvironments). */
  environments: Environment[];
  /** Started by a cancel (docs/adr/0019-steering-running-deployments.md): only if no rollback was ever started; the deployment stays Cancelled. */
  cancel?: true;
}

export type RollbackRequestOutcome =
  | { outcome: 'started'; requestedAt: string }
  | { outcome: 'alreadyRunning' }
  | { outcome: 'locked'; lock: HeldLock }
  | DegradedOutcome;

/**
 * Mark the deployment's rollback Running (audited) while taking the module's locks, so no new
 * deployment of it starts meanwhile; then start the rollback state machine. An environment
 * Degraded by another deployment refuses it (only that deployment's rollback repairs it).
 */
export async function requestRollback(d: DeploymentRecord, r: RollbackRequest): Promise<RollbackRequestOutcome> {
  const { executionId } = d;
  const now = new Date().toISOString();
  const attempt = d.rollback ? 2 : 1;
  const executionName = `${executionId}-rollback-${attempt}-${Date.now().toString(36)}`;
  const record = { status: 'Running', requestedBy: r.requestedBy, requestedAt: now, reason: r.reason, executionName, ...(r.cancel ? { cancel: true } : {}) };
  const update = withCondition(
    { UpdateExpression: 'SET #rollback = :r, updatedAt = :now', ExpressionAttributeValues: { ':r': record, ':now': now } },
    r.cancel ? REQUEST_CONDITIONS.cancelRollbackMayStart : REQUEST_CONDITIONS.rollbackMayStart,
  );
  const event: AuditEvent = {
    subject: deploymentSubject(executionId),
    category: 'deployment',
    action: 'rollback.requested',
    actor: r.requestedBy,
    details: { reason: r.reason, environments: r.environments, ...(r.cancel ? { cancel: true } : {}) },
  };
  const items: RequestItem[] = [
    ...auditedUpdateItems(executionId, update, event).map((item) => ({ item })),
    ...lockItems(d.moduleName, environmentsUpTo(d.targetEnvironment), executionId),
    ...degradedCheckItems(d.moduleName, r.environments, executionId),
  ];
  try {
    await transactWrite(untagged(items));
  } catch (e) {
    if (!(e instanceof TransactionCanceledException)) throw e;
    const degraded = await degradedRefusal(items, e.CancellationReasons ?? []);
    if (degraded) return degraded;
    const held = heldLock(items, e.CancellationReasons ?? []);
    return held ? { outcome: 'locked', lock: await describeHeldLock(held) } : { outcome: 'alreadyRunning' };
  }
  await stepFunctions().send(
    new StartExecutionCommand({
      stateMachineArn: config.rollbackStateMachineArn(),
      name: executionName,
      // The id of the request that asked for it (a rollback or cancel request), else the deployment's own.
      input: JSON.stringify({
        executionId,
        correlationId: correlationIdInHand() ?? d.correlationId ?? executionId,
        environments: r.environments,
        requestedBy: r.requestedBy,
      }),
    }),
  );
  return { outcome: 'started', requestedAt: now };
}
