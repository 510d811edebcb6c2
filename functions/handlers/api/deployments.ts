import { z } from 'zod';
import { orderedStages, TERMINAL_STATUSES, type DeploymentRecord } from '../../domain/deployment.ts';
import { changedEnvironments } from '../../lib/changes.ts';
import { ENVIRONMENTS, ENVIRONMENT_PROFILES, type Environment } from '../../domain/environments.ts';
import { AppError, conflict, notFound } from '../../domain/errors.ts';
import { moduleNameSchema, semverSchema } from '../../domain/manifest.ts';
import { UNREACHABLE_POLICIES } from '../../domain/membership.ts';
import { DEPLOYMENT_STATUSES } from '../../domain/deployment.ts';
import { requestDeployment, requestRollback, type DegradedOutcome } from '../../lib/deploymentRequests.ts';
import { degradedMessage } from '../../domain/degraded.ts';
import { getDeployment, listDeployments } from '../../lib/deployments.ts';
import type { Principal } from '../../domain/roles.ts';
import { decodeCursor, encodeCursor, fromCursor } from '../../lib/cursor.ts';
import { apiHandler, json } from '../../lib/http.ts';
import {
  cancelApplies,
  HOLD_DEADLINE_ACTIONS,
  pauseApplies,
  promoteApplies,
  PROMOTION_TARGETS,
  resumeApplies,
  type Cancellation,
  type Hold,
} from '../../domain/steering.ts';
import { continueCancellation } from '../../lib/reconcile.ts';
import { driveCancellation, liftHold, markCancellation, setHold, setPromotion } from '../../lib/steering.ts';
import { config } from '../../lib/config.ts';
import { parseBody, parsePath, parseQuery } from '../../lib/parse.ts';
import { rejudge, rejudgeSchema } from '../../lib/rejudge.ts';
import { addCorrelation, logger } from '../../lib/telemetry.ts';
import { pathSchema } from './pathParameters.ts';

export const createSchema = z
  .object({
    moduleName: moduleNameSchema,
    version: semverSchema,
    targetEnvironment: z.enum(ENVIRONMENTS),
    metadata: z
      .record(z.string().max(64), z.string().max(256))
      .refine((m) => Object.keys(m).length <= 20, 'at most 20 entries')
      .optional(),
    /** Enrolled nodes that stopped heartbeating: fail the plan (default) or leave them unchanged. */
    unreachableNodes: z.enum(UNREACHABLE_POLICIES).optional(),
  })
  .strict();

export const listSchema = z
  .object({
    status: z.enum(DEPLOYMENT_STATUSES).optional(),
    moduleName: moduleNameSchema.optional(),
    targetEnvironment: z.enum(ENVIRONMENTS).optional(),
    requestedBy: z.string().max(128).optional(),
    limit: z.coerce.number().int().min(1).max(100).default(20),
    cursor: z.string().max(2048).optional(),
  })
  .strict();

const idSchema = pathSchema('executionId');

const idempotencyKeySchema = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'Idempotency-Key must be 1-128 characters of A-Z a-z 0-9 _ . : -');

/** The API view of a deployment: stages in order, internal keys left out. */
export function presentDeployment(d: DeploymentRecord) {
  return {
    executionId: d.executionId,
    moduleName: d.moduleName,
    version: d.version,
    targetEnvironment: d.targetEnvironment,
    status: d.status,
    requestedBy: d.requestedBy,
    createdAt: d.createdAt,
    updatedAt: d.updatedAt,
    finishedAt: d.finishedAt,
    metadata: d.metadata ?? {},
    unreachableNodes: d.unreachableNodes ?? 'fail',
    failure: d.failure,
    rollback: d.rollback,
    cancellation: d.cancellation,
    hold: d.hold,
    promotion: d.promotion,
    stages: orderedStages(d),
  };
}

async function create(event: Parameters<typeof parseBody>[0], caller: Principal) {
  const body = parseBody(event, createSchema);
  const rawKey = event.headers?.['idempotency-key'];
  const key = rawKey === undefined ? undefined : idempotencyKeySchema.safeParse(rawKey);
  if (key && !key.success) throw new AppError('ValidationError', key.error.issues[0].message);
  const r = await requestDeployment(body, { requestedBy: caller.userId, idempotencyKey: key?.data });
  if (r.outcome === 'started' || r.outcome === 'replayed') {
    // The request's correlation id meets the deployment's keys, which every task's lines carry.
    addCorrelation({ executionId: r.executionId, deploymentId: r.executionId, module: body.moduleName, environment: r.targetEnvironment });
    logger.info(r.outcome === 'started' ? 'deployment started' : 'deployment request replayed');
  }
  switch (r.outcome) {
    case 'started':
      return accepted(r.executionId, r.targetEnvironment);
    case 'replayed': {
      const res = accepted(r.executionId, r.targetEnvironment);
      return { ...res, headers: { ...res.headers, 'idempotent-replayed': 'true' } };
    }
    case 'keyReused':
      throw conflict('IdempotencyKeyReused', 'this Idempotency-Key was already used with a different request body');
    case 'unknownModule':
      throw new AppError('UnknownModuleVersion', `module ${body.moduleName}@${body.version} is not registered`, 400);
    case 'degraded':
      throw degradedConflict(r);
    case 'locked':
      throw conflict(
        'DeploymentInProgress',
        `${r.lock.moduleName} is already being deployed to ${r.lock.environment} by ${r.lock.holder ?? 'another deployment'}; wait for it to finish`,
      );
  }
}

/** 409 EnvironmentDegraded: what is mixed, and how to repair it. */
function degradedConflict(r: DegradedOutcome): AppError {
  const message = r.mark
    ? degradedMessage(r.moduleName, r.environment, r.mark)
    : `${r.moduleName} in ${r.environment} is Degraded; see GET /api/v1/clusters/${r.environment} for the deployment to roll back`;
  return new AppError(
    'EnvironmentDegraded',
    message,
    409,
    r.mark
      ? { environment: r.environment, moduleName: r.moduleName, degradedBy: r.mark.deploymentId, stuckNodes: Object.keys(r.mark.stuckNodes).sort() }
      : undefined,
  );
}

function accepted(executionId: string, targetEnvironment: Environment) {
  return json(
    202,
    {
      executionId,
      status: 'Pending',
      targetEnvironment,
      strategy: ENVIRONMENT_PROFILES[targetEnvironment].strategy,
      links: { self: `/api/v1/deployments/${executionId}` },
    },
    { location: `/api/v1/deployments/${executionId}` },
  );
}

export const rollbackSchema = z
  .object({ reason: z.string().min(1).max(500).optional() })
  .strict()
  .optional();

async function rollback(event: Parameters<typeof parseBody>[0], caller: Principal) {
  const { executionId } = parsePath(event, idSchema);
  const body = parseBody(event, rollbackSchema);
  const d = await getDeployment(executionId);
  if (!d) throw notFound(`deployment ${executionId}`);
  if (d.rollback?.status === 'Running')
    throw conflict('RollbackInProgress', `a rollback of ${executionId} requested by ${d.rollback.requestedBy} is already running`);
  if (!TERMINAL_STATUSES.includes(d.status)) {
    throw conflict('DeploymentRunning', `${executionId} is still ${d.status}; a running deployment rolls back by itself if it fails`);
  }
  const environments = await changedEnvironments(d);
  if (environments.length === 0) {
    throw conflict(
      'NothingToRollBack',
      d.status === 'RolledBack' ? `${executionId} is already rolled back` : `${executionId} changed no node that is not already back on its previous version`,
    );
  }
  const r = await requestRollback(d, { requestedBy: caller.userId, reason: body?.reason, environments });
  if (r.outcome === 'locked') {
    throw conflict(
      'DeploymentInProgress',
      `${r.lock.moduleName} is being deployed to ${r.lock.environment} by ${r.lock.holder ?? 'another deployment'}; roll back when it has finished`,
    );
  }
  if (r.outcome === 'degraded') throw degradedConflict(r);
  if (r.outcome === 'alreadyRunning') throw conflict('RollbackInProgress', `a rollback of ${executionId} is already running`);
  return json(202, {
    executionId,
    rollback: { status: 'Running', environments, requestedBy: caller.userId, requestedAt: r.requestedAt },
    links: { self: `/api/v1/deployments/${executionId}` },
  });
}

export const cancelSchema = z
  .object({ reason: z.string().min(1).max(500).optional() })
  .strict()
  .optional();

export const pauseSchema = z
  .object({
    reason: z.string().min(1).max(500).optional(),
    /** The hold ends by itself after this many seconds (at most 7 days)… */
    deadlineSeconds: z
      .number()
      .int()
      .min(1)
      .max(7 * 86_400)
      .optional(),
    /** …and then resumes or rolls the canary back (default: CANARY_HOLD_DEADLINE_ACTION, resume). */
    onDeadline: z.enum(HOLD_DEADLINE_ACTIONS).optional(),
  })
  .strict()
  .refine((b) => b.onDeadline === undefined || b.deadlineSeconds !== undefined, 'onDeadline needs deadlineSeconds')
  .optional();

export const resumeSchema = z
  .object({ reason: z.string().min(1).max(500).optional() })
  .strict()
  .optional();

export const promoteSchema = z
  .object({ to: z.enum(PROMOTION_TARGETS).default('nextWave') })
  .strict()
  .optional();

async function steerable(event: Parameters<typeof parseBody>[0]) {
  const { executionId } = parsePath(event, idSchema);
  const d = await getDeployment(executionId);
  if (!d) throw notFound(`deployment ${executionId}`);
  return d;
}

/**
 * Cancel: record the request (audited, once), stop the pipeline, settle the deployment Cancelled
 * and roll back what it changed (lib/steering.ts). A repeated cancel of one still settling drives
 * the same steps again, which is harmless, so a retry completes an interrupted cancel.
 */
async function cancel(event: Parameters<typeof parseBody>[0], caller: Principal) {
  const body = parseBody(event, cancelSchema);
  let d = await steerable(event);
  const applies = cancelApplies(d);
  if (!applies.ok) throw conflict(applies.code, applies.message);
  let c: Cancellation | undefined = d.cancellation;
  if (!c) {
    const mine: Cancellation = { requestedBy: caller.userId, requestedAt: new Date().toISOString(), reason: body?.reason };
    if (await markCancellation(d.executionId, mine)) c = mine;
    else {
      d = (await getDeployment(d.executionId)) ?? d;
      const again = cancelApplies(d);
      if (!again.ok) throw conflict(again.code, again.message);
      c = d.cancellation;
    }
    if (!c) throw conflict('DeploymentChanged', `${d.executionId} changed while it was being cancelled; try again`);
  }
  const r = await driveCancellation(d, c);
  if (r.state === 'notStarted')
    throw conflict('DeploymentStarting', `${d.executionId} is recorded as cancelled but its pipeline has not started yet; send the cancel again in a moment`);
  if (r.status !== 'Cancelled' && TERMINAL_STATUSES.includes(r.status as DeploymentRecord['status']))
    throw conflict('DeploymentFinished', `${d.executionId} ended ${r.status} before the cancel took effect; roll it back instead`);
  // Settled Cancelled: the reconciler starts the rollback right after it settles; this request
  // starts it too if it is not there yet (at most one ever starts: the write is conditional), so
  // the answer shows the rollback whichever of the two got there first.
  if (r.state === 'settled' && r.status === 'Cancelled') await continueCancellation(d.executionId);
  const after = await getDeployment(d.executionId);
  // 202: the execution is stopped; status is Cancelled once the reconciler has settled it (normally within a second).
  return json(202, {
    executionId: d.executionId,
    status: r.status,
    cancellation: c,
    rollback: after?.rollback,
    links: { self: `/api/v1/deployments/${d.executionId}` },
  });
}

async function pause(event: Parameters<typeof parseBody>[0], caller: Principal) {
  const body = parseBody(event, pauseSchema);
  const d = await steerable(event);
  const refused = pauseApplies(d);
  if (refused) throw conflict(refused.code, refused.message);
  const now = new Date();
  const hold: Hold = {
    requestedBy: caller.userId,
    requestedAt: now.toISOString(),
    reason: body?.reason,
    deadline: body?.deadlineSeconds ? new Date(now.getTime() + body.deadlineSeconds * 1000).toISOString() : undefined,
    onDeadline: body?.onDeadline ?? config.canaryHoldDeadlineAction(),
  };
  if (!(await setHold(d, hold))) {
    const now2 = (await getDeployment(d.executionId)) ?? d;
    const why = pauseApplies(now2) ?? { code: 'DeploymentChanged', message: `${d.executionId} changed meanwhile; try again` };
    throw conflict(why.code, why.message);
  }
  return json(200, { executionId: d.executionId, hold, links: { self: `/api/v1/deployments/${d.executionId}` } });
}

async function resume(event: Parameters<typeof parseBody>[0], caller: Principal) {
  parseBody(event, resumeSchema);
  const d = await steerable(event);
  const refused = resumeApplies(d);
  if (refused) throw conflict(refused.code, refused.message);
  if (!(await liftHold(d, caller.userId, 'resumed'))) throw conflict('NotPaused', `${d.executionId} is not paused any more`);
  return json(200, {
    executionId: d.executionId,
    resumed: { by: caller.userId, pausedBy: d.hold?.requestedBy },
    links: { self: `/api/v1/deployments/${d.executionId}` },
  });
}

async function promote(event: Parameters<typeof parseBody>[0], caller: Principal) {
  const body = parseBody(event, promoteSchema);
  const to = body?.to ?? 'nextWave';
  const d = await steerable(event);
  const refused = promoteApplies(d, to);
  if (refused) throw conflict(refused.code, refused.message);
  const promotion = await setPromotion(d, caller.userId, to);
  if (!promotion) {
    const now = (await getDeployment(d.executionId)) ?? d;
    const why = promoteApplies(now, to) ?? { code: 'DeploymentChanged', message: `${d.executionId} changed meanwhile; try again` };
    throw conflict(why.code, why.message);
  }
  return json(200, { executionId: d.executionId, promotion, links: { self: `/api/v1/deployments/${d.executionId}` } });
}

async function canaryRejudge(event: Parameters<typeof parseBody>[0], caller: Principal) {
  const { executionId } = parsePath(event, idSchema);
  const body = parseBody(event, rejudgeSchema);
  const d = await getDeployment(executionId);
  if (!d) throw notFound(`deployment ${executionId}`);
  return json(200, await rejudge(d, body, caller));
}

export const handler = apiHandler({
  'POST /api/v1/deployments/{executionId}/canary/rejudge': canaryRejudge,
  'POST /api/v1/deployments/{executionId}/cancel': cancel,
  'POST /api/v1/deployments/{executionId}/pause': pause,
  'POST /api/v1/deployments/{executionId}/resume': resume,
  'POST /api/v1/deployments/{executionId}/promote': promote,
  'POST /api/v1/deployments/{executionId}/rollback': rollback,
  'POST /api/v1/deployments': create,
  'GET /api/v1/deployments': async (event) => {
    const q = parseQuery(event, listSchema);
    const cursor = decodeCursor(q.cursor);
    const page = await fromCursor(cursor, () => listDeployments({ ...q, cursor }));
    return json(200, {
      items: page.items.map(presentDeployment),
      nextCursor: encodeCursor(page.cursor),
    });
  },
  'GET /api/v1/deployments/{executionId}': async (event) => {
    const { executionId } = parsePath(event, idSchema);
    const d = await getDeployment(executionId);
    if (!d) throw notFound(`deployment ${executionId}`);
    return json(200, presentDeployment(d));
  },
});
