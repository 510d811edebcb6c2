/**
 * Steering a running deployment (docs/adr/0019-steering-running-deployments.md). Every request is
 * one audited conditional write on the deployment record; a cancel then stops the pipeline, and
 * the reconciler settles it Cancelled and starts the rollback of what it changed. Each step is safe
 * to repeat: the writes are conditional, StopExecution of a stopped execution changes nothing.
 */
import { DescribeExecutionCommand, ExecutionDoesNotExist, StopExecutionCommand } from '@aws-sdk/client-sfn';
import { DEAD_EXECUTION_STATUSES, type DeadExecutionStatus, settlementOf } from '../domain/executionStatus.ts';
import { settleDeadPipeline } from './reconcile.ts';
import type { DeploymentRecord } from '../domain/deployment.ts';
import { TERMINAL_STATUSES } from '../domain/deployment.ts';
import type { Cancellation, Hold, Promotion, PromotionTarget } from '../domain/steering.ts';
import { deploymentSubject } from './audit.ts';
import { stepFunctions } from './aws.ts';
import { config } from './config.ts';
import { getDeployment, pipelineExecutionArn, updateDeploymentAudited } from './deployments.ts';

const terminalNames = TERMINAL_STATUSES.map((_, i) => `:t${i}`).join(', ');
const terminalValues = Object.fromEntries(TERMINAL_STATUSES.map((s, i) => [`:t${i}`, s]));

/** Record the cancel (audited; only on an unfinished deployment, only once). False when the condition failed. */
export async function markCancellation(executionId: string, c: Cancellation): Promise<boolean> {
  return updateDeploymentAudited(
    executionId,
    {
      UpdateExpression: 'SET cancellation = :c, updatedAt = :now',
      ConditionExpression: `attribute_exists(executionId) AND attribute_not_exists(cancellation) AND NOT (#status IN (${terminalNames}))`,
      ExpressionAttributeNames: { '#status': 'status' },
      ExpressionAttributeValues: { ':c': c, ':now': c.requestedAt, ...terminalValues },
    },
    {
      subject: deploymentSubject(executionId),
      category: 'deployment',
      action: 'deployment.cancel-requested',
      actor: c.requestedBy,
      details: { reason: c.reason },
    },
  );
}

/** What stopping the pipeline led to. */
export type CancelProgress =
  /** Settled (normally `Cancelled`; something else if the execution had ended by itself first). */
  | { state: 'settled'; status: string }
  /** Stopped, not settled yet: the reconciler settles it on the ABORTED event. */
  | { state: 'stopping'; status: string }
  /** The pipeline has not been started yet (a Pending deployment): nothing to stop yet. */
  | { state: 'notStarted' };

/**
 * Stop the pipeline (its .sync strategy child stops with it; `StopExecution` of a stopped execution
 * changes nothing). The reconciler settles the deployment on the execution's ABORTED event and,
 * because the deployment carries a cancellation, starts the rollback of what it changed
 * (lib/reconcile.ts). The request waits up to `CANCEL_SETTLE_WAIT_MS` for that, to answer the
 * settled status; it never settles anything itself, so it needs no rights beyond stopping.
 */
export async function driveCancellation(d: DeploymentRecord, c: Cancellation): Promise<CancelProgress> {
  const executionArn = pipelineExecutionArn(d);
  const cause = `cancelled by ${c.requestedBy}${c.reason ? `: ${c.reason}` : ''}`;
  try {
    await stepFunctions().send(new StopExecutionCommand({ executionArn, error: 'DeploymentCancelled', cause }));
  } catch (e) {
    if (e instanceof ExecutionDoesNotExist) return { state: 'notStarted' };
    throw e;
  }
  // Its execution may have died long ago with the deployment still open (the status-change event
  // that the reconciler settles it on was lost, or a late write reopened it): settle it here, as the
  // reconciler would, rather than wait for an event that will never come.
  const execution = await stepFunctions().send(new DescribeExecutionCommand({ executionArn }));
  const status = execution.status as string | undefined;
  if (status && (DEAD_EXECUTION_STATUSES as readonly string[]).includes(status)) {
    const now = await getDeployment(d.executionId);
    if (now && !TERMINAL_STATUSES.includes(now.status))
      await settleDeadPipeline(
        d.executionId,
        { executionArn, name: execution.name ?? d.executionId, status },
        settlementOf(status as DeadExecutionStatus, execution.error, execution.cause),
      );
  }
  const deadline = Date.now() + config.cancelSettleWaitMs();
  for (;;) {
    const now = await getDeployment(d.executionId);
    const status = now?.status ?? d.status;
    if (TERMINAL_STATUSES.includes(status)) return { state: 'settled', status };
    if (Date.now() >= deadline) return { state: 'stopping', status };
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Hold the running canary before its next wave (audited; only if not already held). */
export async function setHold(d: DeploymentRecord, hold: Hold): Promise<boolean> {
  return updateDeploymentAudited(
    d.executionId,
    {
      UpdateExpression: 'SET #hold = :h, updatedAt = :now',
      ConditionExpression: `attribute_not_exists(#hold) AND attribute_not_exists(cancellation) AND #status = :running`,
      ExpressionAttributeNames: { '#hold': 'hold', '#status': 'status' },
      ExpressionAttributeValues: { ':h': hold, ':now': hold.requestedAt, ':running': 'Running' },
    },
    {
      subject: deploymentSubject(d.executionId),
      category: 'deployment',
      action: 'deployment.paused',
      actor: hold.requestedBy,
      details: { reason: hold.reason, deadline: hold.deadline, onDeadline: hold.onDeadline },
    },
  );
}

/** Lift the hold that was set at `requestedAt` (a later hold is not lifted by an earlier resume). */
export async function liftHold(d: DeploymentRecord, by: string, why: 'resumed' | 'deadline'): Promise<boolean> {
  if (!d.hold) return false;
  return updateDeploymentAudited(
    d.executionId,
    {
      UpdateExpression: 'REMOVE #hold SET updatedAt = :now',
      ConditionExpression: '#hold.requestedAt = :at',
      ExpressionAttributeNames: { '#hold': 'hold' },
      ExpressionAttributeValues: { ':at': d.hold.requestedAt, ':now': new Date().toISOString() },
    },
    {
      subject: deploymentSubject(d.executionId),
      category: 'deployment',
      action: 'deployment.resumed',
      actor: by,
      details: { pausedBy: d.hold.requestedBy, pausedAt: d.hold.requestedAt, why },
    },
  );
}

/** Record a promotion (audited). Replaces only a consumed `nextWave` promotion, never a full one. */
export async function setPromotion(d: DeploymentRecord, requestedBy: string, to: PromotionTarget): Promise<Promotion | undefined> {
  const promotion: Promotion = { requestedBy, requestedAt: new Date().toISOString(), to };
  const ok = await updateDeploymentAudited(
    d.executionId,
    {
      UpdateExpression: 'SET promotion = :p, updatedAt = :now',
      ConditionExpression:
        'attribute_not_exists(#hold) AND attribute_not_exists(cancellation) AND #status = :running AND (attribute_not_exists(promotion) OR (promotion.#to = :nextWave AND attribute_exists(promotion.consumedByWave)))',
      ExpressionAttributeNames: { '#hold': 'hold', '#status': 'status', '#to': 'to' },
      ExpressionAttributeValues: { ':p': promotion, ':now': promotion.requestedAt, ':running': 'Running', ':nextWave': 'nextWave' },
    },
    { subject: deploymentSubject(d.executionId), category: 'deployment', action: 'deployment.promoted', actor: requestedBy, details: { to } },
  );
  return ok ? promotion : undefined;
}

/** A `nextWave` promotion cut this wave's bake short: it applies to no later wave (idempotent per wave). */
export async function consumePromotion(d: DeploymentRecord, wave: number): Promise<void> {
  if (d.promotion?.to !== 'nextWave' || d.promotion.consumedByWave !== undefined) return;
  await updateDeploymentAudited(
    d.executionId,
    {
      UpdateExpression: 'SET promotion.consumedByWave = :w, updatedAt = :now',
      ConditionExpression: 'promotion.requestedAt = :at AND attribute_not_exists(promotion.consumedByWave)',
      ExpressionAttributeValues: { ':w': wave, ':at': d.promotion.requestedAt, ':now': new Date().toISOString() },
    },
    {
      subject: deploymentSubject(d.executionId),
      category: 'deployment',
      action: 'canary.bake-skipped',
      actor: 'system:canary',
      details: { wave, promotedBy: d.promotion.requestedBy },
    },
  );
}
