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
import { parseBody, parsePath, parseQuery } from '../../lib/parse.ts';

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

const idSchema = z.object({ executionId: z.string().regex(/^dep-[a-z0-9]{9}-[a-f0-9]{12}$/, 'is not a deployment id') });

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
    stages: orderedStages(d),
  };
}

async function create(event: Parameters<typeof parseBody>[0], caller: Principal) {
  const body = parseBody(event, createSchema);
  const rawKey = event.headers?.['idempotency-key'];
  const key = rawKey === undefined ? undefined : idempotencyKeySchema.safeParse(rawKey);
  if (key && !key.success) throw new AppError('ValidationError', key.error.issues[0].message);
  const r = await requestDeployment(body, { requestedBy: caller.userId, idempotencyKey: key?.data });
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

export const handler = apiHandler({
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
