/**
 * Settling a deployment whose execution died (docs/adr/0014-durable-local-executions.md): the
 * pipeline or rollback execution FAILED outside its own failure path, TIMED_OUT, or was stopped
 * from outside, so nothing in it will settle the deployment. Every write is conditional: a
 * deployment (or rollback) the execution already settled is left alone, so a repeated or late
 * event changes nothing.
 */
import { TERMINAL_STATUSES, orderedStages, type DeploymentRecord } from '../domain/deployment.ts';
import { environmentsUpTo } from '../domain/environments.ts';
import type { Settlement } from '../domain/executionStatus.ts';
import { approvalsOf, closeApproval } from './approvals.ts';
import { changedEnvironments } from './changes.ts';
import { requestRollback } from './deploymentRequests.ts';
import { deploymentSubject } from './audit.ts';
import { getDeployment, updateDeploymentAudited } from './deployments.ts';
import { releaseLocks } from './locks.ts';
import { notifyUser } from './notify.ts';

const ACTOR = 'system:reconcile';

export type Reconciled =
  | { action: 'settled'; status: string }
  /** The execution (or a later one) settled it already: nothing changed. */
  | { action: 'alreadySettled'; status: string }
  | { action: 'unknownDeployment' };

interface DeadExecution {
  executionArn: string;
  name: string;
  status: string;
}

/**
 * A pipeline execution died with its deployment still open: the deployment ends Cancelled or
 * Failed with the reason (each stage still Running fails with it), its locks are released, an
 * approval still waiting is closed, and the requester is told.
 */
export async function settleDeadPipeline(executionId: string, execution: DeadExecution, s: Settlement): Promise<Reconciled> {
  const d = await getDeployment(executionId);
  if (!d) return { action: 'unknownDeployment' };
  if (TERMINAL_STATUSES.includes(d.status)) {
    // A cancel whose rollback did not start yet (the step after settling was interrupted): start it now.
    await continueCancellation(executionId);
    return { action: 'alreadySettled', status: d.status };
  }
  const now = new Date().toISOString();
  const running = orderedStages(d).filter((st) => st.status === 'Running');
  const names: Record<string, string> = { '#status': 'status' };
  const values: Record<string, unknown> = {
    ':status': s.deploymentStatus,
    ':now': now,
    ':failure': { stage: running[0]?.name, code: s.code, message: s.message },
    ...Object.fromEntries(TERMINAL_STATUSES.map((t, i) => [`:t${i}`, t])),
  };
  const sets = ['#status = :status', 'finishedAt = :now', 'updatedAt = :now', 'failure = if_not_exists(failure, :failure)'];
  // DynamoDB refuses placeholders an expression does not use: the stage parts only when a stage runs.
  if (running.length) {
    names['#stages'] = 'stages';
    values[':failed'] = 'Failed';
    values[':message'] = s.message;
  }
  running.forEach((st, i) => {
    names[`#s${i}`] = st.name;
    sets.push(`#stages.#s${i}.#status = :failed`, `#stages.#s${i}.finishedAt = :now`, `#stages.#s${i}.message = :message`);
  });
  const settled = await updateDeploymentAudited(
    executionId,
    {
      UpdateExpression: `SET ${sets.join(', ')}`,
      ConditionExpression: `attribute_exists(executionId) AND NOT (#status IN (${TERMINAL_STATUSES.map((_, i) => `:t${i}`).join(', ')}))`,
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
    },
    {
      subject: deploymentSubject(executionId),
      category: 'deployment',
      action: `deployment.${s.deploymentStatus.toLowerCase()}`,
      actor: ACTOR,
      details: {
        status: s.deploymentStatus,
        failure: values[':failure'],
        executionArn: execution.executionArn,
        executionStatus: execution.status,
        stagesFailed: running.map((st) => st.name),
      },
    },
  );
  if (!settled) {
    await continueCancellation(executionId);
    return { action: 'alreadySettled', status: (await getDeployment(executionId))?.status ?? d.status };
  }
  // A cancelled deployment keeps its locks for the rollback of what it changed (which gives them back).
  if (d.cancellation) await continueCancellation(executionId);
  else await releaseLocks(d.moduleName, environmentsUpTo(d.targetEnvironment), executionId);
  for (const a of await approvalsOf(executionId)) if (a.status === 'Pending') await closeApproval(a, ACTOR, s.message);
  await notifyRequester(d, s.deploymentStatus, s.message);
  return { action: 'settled', status: s.deploymentStatus };
}

/**
 * A rollback-on-demand execution died while its rollback was Running: the rollback ends Failed
 * with the reason (the deployment keeps its status, as after any failed rollback, and may be
 * rolled back again) and the locks it took are released. A later attempt's rollback is not
 * touched by an earlier attempt's event.
 */
export async function settleDeadRollback(executionId: string, execution: DeadExecution, s: Settlement): Promise<Reconciled> {
  const d = await getDeployment(executionId);
  if (!d) return { action: 'unknownDeployment' };
  const rollback = d.rollback;
  if (rollback?.status !== 'Running' || (rollback.executionName !== undefined && rollback.executionName !== execution.name))
    return { action: 'alreadySettled', status: rollback?.status ?? d.status };
  const now = new Date().toISOString();
  const message = `rollback did not complete: ${s.message}`;
  const settled = await updateDeploymentAudited(
    executionId,
    {
      UpdateExpression: 'SET #rollback.#status = :failed, #rollback.finishedAt = :now, #rollback.message = :m, updatedAt = :now',
      ConditionExpression: `#rollback.#status = :running${rollback.executionName ? ' AND #rollback.executionName = :name' : ''}`,
      ExpressionAttributeNames: { '#rollback': 'rollback', '#status': 'status' },
      ExpressionAttributeValues: {
        ':failed': 'Failed',
        ':now': now,
        ':m': message,
        ':running': 'Running',
        ...(rollback.executionName ? { ':name': execution.name } : {}),
      },
    },
    {
      subject: deploymentSubject(executionId),
      category: 'deployment',
      action: 'rollback.failed',
      actor: ACTOR,
      details: { message, executionArn: execution.executionArn, executionStatus: execution.status },
    },
  );
  if (!settled) return { action: 'alreadySettled', status: 'Failed' };
  await releaseLocks(d.moduleName, environmentsUpTo(d.targetEnvironment), executionId);
  await notifyRequester(d, d.status, message);
  return { action: 'settled', status: 'Failed' };
}

/**
 * After a cancelled deployment was settled Cancelled (its locks still held): roll back every
 * environment it changed, newest first (the rollback state machine; blue-green traffic goes back
 * first), or release the locks when it changed nothing. Starts at most one rollback: the write
 * that starts it is conditional on no rollback ever having started
 * (docs/adr/0019-steering-running-deployments.md). True when a rollback is running or ran.
 */
export async function continueCancellation(executionId: string): Promise<boolean> {
  const d = await getDeployment(executionId);
  if (!d?.cancellation || d.status !== 'Cancelled') return false;
  if (d.rollback) return true;
  const environments = await changedEnvironments(d);
  if (environments.length === 0) {
    await releaseLocks(d.moduleName, environmentsUpTo(d.targetEnvironment), executionId);
    return false;
  }
  const r = await requestRollback(d, {
    requestedBy: d.cancellation.requestedBy,
    reason: `cancelled${d.cancellation.reason ? `: ${d.cancellation.reason}` : ''}`,
    environments,
    cancel: true,
  });
  // alreadyRunning: the other path (cancel request or reconciler) started it first.
  return r.outcome !== 'locked';
}

async function notifyRequester(d: DeploymentRecord, status: string, message: string): Promise<void> {
  await notifyUser(
    d.requestedBy,
    `${d.moduleName}@${d.version} to ${d.targetEnvironment}: ${status}`,
    `Deployment ${d.executionId} of ${d.moduleName}@${d.version} to ${d.targetEnvironment} ended ${status}: ${message}.`,
  );
}
