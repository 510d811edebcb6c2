import { randomBytes, createHash } from 'node:crypto';
import { StartExecutionCommand } from '@aws-sdk/client-sfn';
import { GetCommand, TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import { initialStages, newExecutionId, orderedStages, TERMINAL_STATUSES, type DeploymentRecord } from '../../domain/deployment.ts';
import { changedEnvironments } from '../../lib/changes.ts';
import { ENVIRONMENTS, ENVIRONMENT_PROFILES, environmentsUpTo } from '../../domain/environments.ts';
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { acquireLockItem, getLock, releaseLocks } from '../../lib/locks.ts';
import { AppError, conflict, notFound } from '../../domain/errors.ts';
import { moduleNameSchema, semverSchema } from '../../domain/manifest.ts';
import { DEPLOYMENT_STATUSES } from '../../domain/deployment.ts';
import { auditItem, deploymentSubject } from '../../lib/audit.ts';
import { dynamo, stepFunctions } from '../../lib/aws.ts';
import { config } from '../../lib/config.ts';
import { auditedUpdateItems, getDeployment, listDeployments, newDeploymentItem, setDeploymentStatus } from '../../lib/deployments.ts';
import type { Principal } from '../../domain/roles.ts';
import { decodeCursor, encodeCursor } from '../../lib/cursor.ts';
import { apiHandler, json } from '../../lib/http.ts';
import { parseBody, parsePath, parseQuery } from '../../lib/parse.ts';
import { getModuleVersion } from '../../lib/modules.ts';
import { tableName, TTL_ATTRIBUTE } from '../../lib/tables.ts';

export const createSchema = z
  .object({
    moduleName: moduleNameSchema,
    version: semverSchema,
    targetEnvironment: z.enum(ENVIRONMENTS),
    metadata: z
      .record(z.string().max(64), z.string().max(256))
      .refine((m) => Object.keys(m).length <= 20, 'at most 20 entries')
      .optional(),
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
  const bodyHash = createHash('sha256').update(JSON.stringify(body)).digest('hex');
  const idemKey = key ? `${caller.userId}#${key.data}` : undefined;

  if (idemKey) {
    const prior = await replay(idemKey, bodyHash);
    if (prior) return prior;
  }
  const module = await getModuleVersion(body.moduleName, body.version);
  if (!module) throw new AppError('UnknownModuleVersion', `module ${body.moduleName}@${body.version} is not registered`, 400);

  const now = new Date();
  const executionId = newExecutionId(now, randomBytes(6).toString('hex'));
  const record: DeploymentRecord = {
    executionId,
    moduleName: body.moduleName,
    version: body.version,
    targetEnvironment: body.targetEnvironment,
    status: 'Pending',
    requestedBy: caller.userId,
    createdAt: now.toISOString(),
    updatedAt: now.toISOString(),
    metadata: body.metadata,
    ...initialStages(body.targetEnvironment),
  };
  const items: NonNullable<ConstructorParameters<typeof TransactWriteCommand>[0]['TransactItems']> = [
    { Put: newDeploymentItem(record) },
    {
      Put: auditItem({
        subject: deploymentSubject(executionId),
        category: 'deployment',
        action: 'deployment.requested',
        actor: caller.userId,
        details: { moduleName: body.moduleName, version: body.version, targetEnvironment: body.targetEnvironment, idempotencyKey: key?.data },
      }),
    },
  ];
  if (idemKey) {
    items.push({
      Put: {
        TableName: tableName('idempotency'),
        Item: { key: idemKey, executionId, bodyHash, [TTL_ATTRIBUTE]: Math.floor(now.getTime() / 1000) + config.idempotencyTtlSeconds() },
        ConditionExpression: 'attribute_not_exists(#k)',
        ExpressionAttributeNames: { '#k': 'key' },
      },
    });
  }
  // One deployment at a time per module and environment: take every environment's lock with the record.
  const lockedEnvironments = environmentsUpTo(body.targetEnvironment);
  const firstLock = items.length;
  for (const env of lockedEnvironments) items.push({ Put: acquireLockItem(body.moduleName, env, executionId) });

  for (let attempt = 0; ; attempt++) {
    try {
      await dynamo().send(new TransactWriteCommand({ TransactItems: items }));
      break;
    } catch (e) {
      if (!(e instanceof TransactionCanceledException)) throw e;
      const reasons = e.CancellationReasons ?? [];
      if (reasons.some((r) => r.Code === 'TransactionConflict') && attempt < 5) {
        await new Promise((r) => setTimeout(r, 20 + Math.random() * 80 * (attempt + 1)));
        continue;
      }
      // A concurrent request with the same key won the race: answer as it did.
      if (idemKey) {
        const prior = await replay(idemKey, bodyHash);
        if (prior) return prior;
      }
      const held = reasons.findIndex((r, i) => i >= firstLock && r.Code === 'ConditionalCheckFailed');
      if (held >= 0) {
        const env = lockedEnvironments[held - firstLock];
        const lock = await getLock(body.moduleName, env);
        throw conflict(
          'DeploymentInProgress',
          `${body.moduleName} is already being deployed to ${env} by ${lock?.executionId ?? 'another deployment'}; wait for it to finish`,
        );
      }
      throw e;
    }
  }

  try {
    const started = await stepFunctions().send(
      new StartExecutionCommand({
        stateMachineArn: config.pipelineStateMachineArn(),
        name: executionId,
        input: JSON.stringify({
          executionId,
          moduleName: body.moduleName,
          version: body.version,
          targetEnvironment: body.targetEnvironment,
          // Read by the approval gates' TimeoutSecondsPath: the expiry is the state machine's own.
          approvalTimeoutSeconds: { Staging: config.approvalTimeoutSeconds('Staging'), Production: config.approvalTimeoutSeconds('Production') },
        }),
      }),
    );
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
    await releaseLocks(body.moduleName, lockedEnvironments, executionId);
    throw e;
  }
  return accepted(executionId, body.targetEnvironment);
}

function accepted(executionId: string, targetEnvironment: string) {
  return json(
    202,
    {
      executionId,
      status: 'Pending',
      targetEnvironment,
      strategy: ENVIRONMENT_PROFILES[targetEnvironment as keyof typeof ENVIRONMENT_PROFILES].strategy,
      links: { self: `/api/v1/deployments/${executionId}` },
    },
    { location: `/api/v1/deployments/${executionId}` },
  );
}

async function replay(idemKey: string, bodyHash: string) {
  const r = await dynamo().send(new GetCommand({ TableName: tableName('idempotency'), Key: { key: idemKey }, ConsistentRead: true }));
  if (!r.Item) return undefined;
  if (r.Item.bodyHash !== bodyHash) {
    throw conflict('IdempotencyKeyReused', 'this Idempotency-Key was already used with a different request body');
  }
  const d = await getDeployment(String(r.Item.executionId));
  if (!d) return undefined;
  const res = accepted(d.executionId, d.targetEnvironment);
  return { ...res, headers: { ...res.headers, 'idempotent-replayed': 'true' } };
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
  const now = new Date().toISOString();
  const attempt = d.rollback ? 2 : 1;
  try {
    await dynamo().send(
      new TransactWriteCommand({
        TransactItems: [
          ...auditedUpdateItems(
            executionId,
            {
              UpdateExpression: 'SET #rollback = :r, updatedAt = :now',
              // Exactly one rollback at a time: the first request wins.
              ConditionExpression: 'attribute_not_exists(#rollback) OR #rollback.#status = :failed',
              ExpressionAttributeNames: { '#rollback': 'rollback', '#status': 'status' },
              ExpressionAttributeValues: {
                ':r': { status: 'Running', requestedBy: caller.userId, requestedAt: now, reason: body?.reason },
                ':now': now,
                ':failed': 'Failed',
              },
            },
            {
              subject: deploymentSubject(executionId),
              category: 'deployment',
              action: 'rollback.requested',
              actor: caller.userId,
              details: { reason: body?.reason, environments },
            },
          ),
          // The rollback holds the module's locks, so no new deployment of it starts meanwhile.
          ...environmentsUpTo(d.targetEnvironment).map((env) => ({ Put: acquireLockItem(d.moduleName, env, executionId) })),
        ],
      }),
    );
  } catch (e) {
    if (!(e instanceof TransactionCanceledException)) throw e;
    const reasons = e.CancellationReasons ?? [];
    const held = reasons.findIndex((r, i) => i >= 2 && r.Code === 'ConditionalCheckFailed');
    if (held >= 0) {
      const env = environmentsUpTo(d.targetEnvironment)[held - 2];
      const lock = await getLock(d.moduleName, env);
      throw conflict(
        'DeploymentInProgress',
        `${d.moduleName} is being deployed to ${env} by ${lock?.executionId ?? 'another deployment'}; roll back when it has finished`,
      );
    }
    throw conflict('RollbackInProgress', `a rollback of ${executionId} is already running`);
  }
  await stepFunctions().send(
    new StartExecutionCommand({
      stateMachineArn: config.rollbackStateMachineArn(),
      name: `${executionId}-rollback-${attempt}-${Date.now().toString(36)}`,
      input: JSON.stringify({ executionId, environments, requestedBy: caller.userId }),
    }),
  );
  return json(202, {
    executionId,
    rollback: { status: 'Running', environments, requestedBy: caller.userId, requestedAt: now },
    links: { self: `/api/v1/deployments/${executionId}` },
  });
}

export const handler = apiHandler({
  'POST /api/v1/deployments/{executionId}/rollback': rollback,
  'POST /api/v1/deployments': create,
  'GET /api/v1/deployments': async (event) => {
    const q = parseQuery(event, listSchema);
    const cursor = decodeCursor(q.cursor);
    const page = await listDeployments({ ...q, cursor });
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
