import { histogramIncrement, metricsUpdate, publishCommitted } from './metrics.ts';
import { SendTaskFailureCommand, SendTaskSuccessCommand } from '@aws-sdk/client-sfn';
import { GetCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import {
  approverStanding,
  decide,
  type ApprovalDecision,
  type ApprovalState,
  type ApprovalStatus,
  type ApproverStanding,
  type Decision,
} from '../domain/approvals.ts';
import type { DeploymentRecord } from '../domain/deployment.ts';
import { AppError } from '../domain/errors.ts';
import type { Environment } from '../domain/environments.ts';
import { auditItem, deploymentSubject } from './audit.ts';
import { dynamo, stepFunctions } from './aws.ts';
import { config } from './config.ts';
import { isConditionFailure, requireDeployment } from './deployments.ts';
import { getEntry } from './directory.ts';
import { notifyUser } from './notify.ts';
import { tableName, TTL_ATTRIBUTE } from './tables.ts';
import { transactWrite } from './auditChain.ts';

export interface ApprovalRecord extends ApprovalState {
  executionId: string;
  environment: Environment;
  moduleName: string;
  version: string;
  requestedAt: string;
  /** Step Functions task token: stays in this table, never in an email, URL or API answer. */
  taskToken: string;
  usedLinks: string[];
  decidedAt?: string;
}

const RETENTION_SECONDS = 400 * 86_400;

/** The public view: everything but the task token. */
export function presentApproval(a: ApprovalRecord) {
  const { taskToken: _secret, usedLinks: _used, [TTL_ATTRIBUTE]: _ttl, ...visible } = a as ApprovalRecord & { [TTL_ATTRIBUTE]?: number };
  void _secret;
  void _used;
  void _ttl;
  return visible;
}

export async function getApproval(executionId: string, environment: string): Promise<ApprovalRecord | undefined> {
  const r = await dynamo().send(new GetCommand({ TableName: tableName('approvals'), Key: { executionId, environment }, ConsistentRead: true }));
  return r.Item as ApprovalRecord | undefined;
}

export async function approvalsOf(executionId: string): Promise<ApprovalRecord[]> {
  const r = await dynamo().send(
    new QueryCommand({
      TableName: tableName('approvals'),
      KeyConditionExpression: 'executionId = :e',
      ExpressionAttributeValues: { ':e': executionId },
      ConsistentRead: true,
    }),
  );
  return (r.Items ?? []) as ApprovalRecord[];
}

export async function pendingApprovals(limit = 100): Promise<ApprovalRecord[]> {
  const r = await dynamo().send(
    new QueryCommand({
      TableName: tableName('approvals'),
      IndexName: 'byStatus',
      KeyConditionExpression: '#s = :p',
      ExpressionAttributeNames: { '#s': 'status' },
      ExpressionAttributeValues: { ':p': 'Pending' },
      Limit: limit,
    }),
  );
  return (r.Items ?? []) as ApprovalRecord[];
}

/** The approval's view inside the deployment's stage record. */
function stageApproval(a: Pick<ApprovalRecord, 'status' | 'approvers' | 'quorum' | 'requestedAt' | 'deadline' | 'decisions'>) {
  return { status: a.status, approvers: a.approvers, quorum: a.quorum, requestedAt: a.requestedAt, deadline: a.deadline, decisions: a.decisions };
}

/**
 * Open the gate's approval (idempotent: a retried request finds it). In one transaction: the
 * approval item, the deployment WaitingForApproval with the approval's details, the audit event.
 */
export async function openApproval(a: ApprovalRecord): Promise<boolean> {
  try {
    await transactWrite([
      {
        Put: {
          TableName: tableName('approvals'),
          Item: { ...a, [TTL_ATTRIBUTE]: Math.floor(Date.now() / 1000) + RETENTION_SECONDS },
          ConditionExpression: 'attribute_not_exists(executionId)',
        },
      },
      {
        Update: {
          TableName: tableName('deployments'),
          Key: { executionId: a.executionId },
          UpdateExpression: 'SET #status = :w, updatedAt = :now, #stages.#env.#approval = :a',
          ConditionExpression: '#status = :running',
          ExpressionAttributeNames: { '#status': 'status', '#stages': 'stages', '#env': a.environment, '#approval': 'approval' },
          ExpressionAttributeValues: { ':w': 'WaitingForApproval', ':running': 'Running', ':now': a.requestedAt, ':a': stageApproval(a) },
        },
      },
      {
        Put: auditItem({
          subject: deploymentSubject(a.executionId),
          category: 'approval',
          action: 'approval.requested',
          actor: 'system:pipeline',
          details: { environment: a.environment, approvers: a.approvers, quorum: a.quorum, deadline: a.deadline, requestedBy: a.requestedBy },
        }),
      },
    ]);
    return true;
  } catch (e) {
    if (!isConditionFailure(e)) throw e;
    // A retried gate (Step Functions re-invokes with a new task token): the approval stays, and
    // its token becomes the new one, so a decision reaches the task that is actually waiting.
    try {
      await dynamo().send(
        new UpdateCommand({
          TableName: tableName('approvals'),
          Key: { executionId: a.executionId, environment: a.environment },
          UpdateExpression: 'SET taskToken = :t',
          ConditionExpression: '#status = :pending',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':t': a.taskToken, ':pending': 'Pending' },
        }),
      );
    } catch (e2) {
      if (!isConditionFailure(e2)) throw e2;
    }
    return false;
  }
}

async function writeOutcome(
  a: ApprovalRecord,
  status: ApprovalStatus,
  decisions: ApprovalDecision[],
  audit: { action: string; actor: string; details: Record<string, unknown> },
  linkNonce?: string,
  /**
   * A person's decision: only while the deployment waits at this gate and nobody asked to cancel
   * it. Without it an approve landing after a cancel turned a Cancelled deployment back to Running
   * (for ever: its pipeline was stopped) and recorded an approval that reached no pipeline.
   */
  decision = false,
): Promise<void> {
  const now = new Date().toISOString();
  const final = status !== 'Pending';
  const deploymentStatus = status === 'Approved' ? 'Running' : undefined;
  // A decided gate counts its wait in the same transaction (docs/adr/0027-prometheus-metrics.md).
  const waitedFor = final
    ? histogramIncrement(
        'kmod_approval_wait_seconds',
        { environment: a.environment, outcome: status },
        Math.max(0, (Date.parse(now) - Date.parse(a.requestedAt)) / 1000),
      )
    : undefined;
  const waited = waitedFor ? [{ Update: metricsUpdate(waitedFor) }] : [];
  await transactWrite([
    {
      Update: {
        TableName: tableName('approvals'),
        Key: { executionId: a.executionId, environment: a.environment },
        UpdateExpression: `SET #status = :s, decisions = :d${final ? ', decidedAt = :now' : ''}${linkNonce ? ', usedLinks = list_append(usedLinks, :nonce)' : ''}`,
        // Optimistic concurrency: nobody decided in between.
        ConditionExpression: `#status = :pending AND size(decisions) = :n${linkNonce ? ' AND NOT contains(usedLinks, :nonceValue)' : ''}`,
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: {
          ':s': status,
          ':d': decisions,
          ':pending': 'Pending',
          ':n': a.decisions.length,
          ...(final ? { ':now': now } : {}),
          ...(linkNonce ? { ':nonce': [linkNonce], ':nonceValue': linkNonce } : {}),
        },
      },
    },
    {
      Update: {
        TableName: tableName('deployments'),
        Key: { executionId: a.executionId },
        UpdateExpression: `SET #stages.#env.#approval = :a, updatedAt = :now${deploymentStatus ? ', #status = :ds' : ''}`,
        ...(decision ? { ConditionExpression: '#status = :waiting AND attribute_not_exists(cancellation)' } : {}),
        ExpressionAttributeNames: {
          '#stages': 'stages',
          '#env': a.environment,
          '#approval': 'approval',
          ...(deploymentStatus || decision ? { '#status': 'status' } : {}),
        },
        ExpressionAttributeValues: {
          ':a': stageApproval({ ...a, status, decisions }),
          ':now': now,
          ...(deploymentStatus ? { ':ds': deploymentStatus } : {}),
          ...(decision ? { ':waiting': 'WaitingForApproval' } : {}),
        },
      },
    },
    {
      Put: auditItem({
        subject: deploymentSubject(a.executionId),
        category: 'approval',
        action: audit.action,
        actor: audit.actor,
        details: { environment: a.environment, ...audit.details },
      }),
    },
    ...waited,
  ]);
  if (waitedFor) publishCommitted(waitedFor);
}

/**
 * Whether an approver may still decide for `environment`: read from the directory (not cached: a
 * decision is rare and must see a disabling at once) and the approver lists as configured now.
 */
export async function currentStanding(approverId: string, environment: string): Promise<ApproverStanding> {
  return approverStanding(approverId, await getEntry(approverId), config.approvers(environment), environment);
}

/** A gate decides only while its deployment waits there and nobody asked to cancel it: otherwise 409, nothing written. */
function refuseIfNotWaiting(d: Pick<DeploymentRecord, 'executionId' | 'status' | 'cancellation'>): void {
  if (d.cancellation)
    throw new AppError(
      'DeploymentCancelled',
      `${d.executionId} was cancelled by ${d.cancellation.requestedBy} (status ${d.status}): its gate decides nothing any more. Nothing was changed.`,
      409,
    );
  if (d.status !== 'WaitingForApproval')
    throw new AppError(
      'NotWaitingForApproval',
      `${d.executionId} is ${d.status}, not waiting for approval: the decision applies to nothing. Nothing was changed.`,
      409,
    );
}

/**
 * Record one approver's decision and, when it settles the gate, resume the pipeline through the
 * task token (approve) or fail it (reject). Shared by the API and the email confirmation page.
 */
export async function applyDecision(o: {
  executionId: string;
  environment: string;
  actor: { userId: string; isAdmin: boolean };
  decision: Decision;
  reason?: string;
  via: ApprovalDecision['via'];
  linkNonce?: string;
}): Promise<ApprovalRecord> {
  const a = await getApproval(o.executionId, o.environment);
  if (!a) throw new AppError('NotFound', `no approval for ${o.environment} of deployment ${o.executionId}`, 404);
  if (o.linkNonce && a.usedLinks.includes(o.linkNonce)) throw new AppError('LinkAlreadyUsed', 'this link has already been used', 409);
  const standing = await currentStanding(o.actor.userId, o.environment);
  if (!standing.ok) throw new AppError(standing.code, standing.message, standing.httpStatus);
  const outcome = decide(a, o.actor, o.decision, o.reason, o.via, new Date());
  if (!outcome.ok) {
    if (outcome.code === 'ApprovalExpired' && a.status === 'Pending') await expireApproval(a, 'system:approvals');
    throw new AppError(outcome.code, outcome.message, outcome.httpStatus);
  }
  const action = outcome.status === 'Pending' ? 'approval.approved-partially' : outcome.status === 'Approved' ? 'approval.approved' : 'approval.rejected';
  refuseIfNotWaiting(await requireDeployment(a.executionId));
  try {
    await writeOutcome(
      a,
      outcome.status,
      outcome.decisions,
      { action, actor: o.actor.userId, details: { reason: o.reason, via: o.via, decisions: outcome.decisions.length, quorum: a.quorum } },
      o.linkNonce,
      true,
    );
  } catch (e) {
    if (isConditionFailure(e)) {
      // The deployment was cancelled or ended meanwhile (a cancel racing the decision), or another decision came first.
      refuseIfNotWaiting(await requireDeployment(a.executionId));
      throw new AppError('AlreadyDecided', 'the approval changed while you decided; reload and try again', 409);
    }
    throw e;
  }
  const updated = { ...a, status: outcome.status, decisions: outcome.decisions };
  if (!outcome.final) return updated;
  const d = await requireDeployment(a.executionId);
  try {
    if (outcome.status === 'Approved') {
      await stepFunctions().send(
        new SendTaskSuccessCommand({ taskToken: a.taskToken, output: JSON.stringify({ approved: true, decisions: outcome.decisions }) }),
      );
    } else {
      await stepFunctions().send(
        new SendTaskFailureCommand({
          taskToken: a.taskToken,
          error: 'ApprovalRejected',
          cause: `rejected by ${o.actor.userId}${o.reason ? `: ${o.reason}` : ''}`,
        }),
      );
    }
  } catch (e) {
    const name = (e as { name?: string }).name;
    if (name === 'TaskTimedOut' || name === 'InvalidToken' || name === 'TaskDoesNotExist') {
      throw new AppError('ApprovalExpired', 'the approval gate had already timed out; the decision came too late', 410);
    }
    throw e;
  }
  await notifyUser(
    d.requestedBy,
    `${d.moduleName}@${d.version} ${outcome.status === 'Approved' ? 'approved' : 'rejected'} for ${a.environment}`,
    `${o.actor.userId} ${outcome.status === 'Approved' ? 'approved' : 'rejected'} the ${a.environment} deployment of ${d.moduleName}@${d.version} (${a.executionId}).${o.reason ? `\nReason: ${o.reason}` : ''}`,
  );
  return updated;
}

/**
 * The gate's execution is gone (stopped from outside, reconciled): the approval can no longer be
 * decided. It ends Expired (no decision reaches the pipeline any more), audited with the reason.
 */
export async function closeApproval(a: ApprovalRecord, actor: string, reason: string): Promise<boolean> {
  try {
    await writeOutcome(a, 'Expired', a.decisions, { action: 'approval.closed', actor, details: { reason } });
    return true;
  } catch (e) {
    if (isConditionFailure(e)) return false;
    throw e;
  }
}

/** The gate timed out (or a late decision found it so): record it, tell the requester. */
export async function expireApproval(a: ApprovalRecord, actor: string): Promise<boolean> {
  try {
    await writeOutcome(a, 'Expired', a.decisions, { action: 'approval.expired', actor, details: { deadline: a.deadline } });
  } catch (e) {
    if (isConditionFailure(e)) return false;
    throw e;
  }
  await notifyUser(
    a.requestedBy,
    `${a.moduleName}@${a.version} approval for ${a.environment} expired`,
    `Nobody decided the ${a.environment} approval of ${a.moduleName}@${a.version} (${a.executionId}) before ${a.deadline}; the deployment was rejected.`,
  );
  return true;
}
