/**
 * One deployment at a time per module and environment: a lock item per (module, environment)
 * owned by an execution id, with a lease. Taking a lock is a conditional write (free, expired,
 * or already ours); the running execution renews the lease at every long step, for that step and
 * the wait after it (domain/locks.ts), so a dead execution's lock lapses by itself soon after.
 */
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { DeleteCommand, GetCommand, TransactWriteCommand, UpdateCommand, type TransactWriteCommandInput } from '@aws-sdk/lib-dynamodb';
import { TERMINAL_STATUSES } from '../domain/deployment.ts';
import { environmentsUpTo, type Environment } from '../domain/environments.ts';
import { AppError } from '../domain/errors.ts';
import { leaseSeconds, type LeaseWait } from '../domain/locks.ts';
import { dynamo } from './aws.ts';
import { CONDITIONS, conditionInput, or, withCondition, type Condition } from './conditions.ts';
import { config } from './config.ts';
import { ignoreConditionFailure, isConditionFailure } from './deployments.ts';
import { tableName } from './tables.ts';

export const lockKey = (moduleName: string, environment: Environment) => `${moduleName}#${environment}`;

export interface LockItem {
  lockKey: string;
  executionId: string;
  acquiredAt: string;
  expiresAt: number;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

const LOCK = {
  free: CONDITIONS.notExists('lockKey'),
  // Lease takeover: a crashed execution stops renewing, and its lock lapses.
  lapsed: (now: number) => CONDITIONS.lessThan(['expiresAt'], now),
  ownedBy: (executionId: string) => CONDITIONS.equals(['executionId'], executionId),
};

/**
 * A deployment still open: not finished, or finished with an on-demand rollback running (the same
 * rule as a stage update's). Only an open deployment's steps may take its locks back.
 */
const DEPLOYMENT_OPEN: Condition = {
  expression: `attribute_exists(#executionId) AND (NOT (#status IN (${TERMINAL_STATUSES.map((_, i) => `:settled${i}`).join(', ')})) OR #rollback.#status = :rollbackRunning)`,
  names: { '#executionId': 'executionId', '#status': 'status', '#rollback': 'rollback' },
  values: { ...Object.fromEntries(TERMINAL_STATUSES.map((t, i) => [`:settled${i}`, t])), ':rollbackRunning': 'Running' },
};

export type TransactItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];

export interface LockRef {
  moduleName: string;
  environment: Environment;
}

/**
 * A transaction item, tagged with the lock it takes if it takes one: a cancelled transaction's
 * reasons come back by position, and the tags say which positions are locks.
 */
export interface TaggedItem {
  item: TransactItem;
  lock?: LockRef;
}

export const untagged = (items: readonly TaggedItem[]): TransactItem[] => items.map((t) => t.item);

/** The Puts that take a module's locks (free, lapsed, or already ours), for a transaction that needs them. */
export function lockItems(moduleName: string, environments: readonly Environment[], executionId: string): TaggedItem[] {
  return environments.map((environment) => ({
    item: {
      Put: {
        TableName: tableName('locks'),
        Item: {
          lockKey: lockKey(moduleName, environment),
          executionId,
          acquiredAt: new Date().toISOString(),
          expiresAt: nowSeconds() + config.lockLeaseSeconds(),
        },
        ...conditionInput(or(LOCK.free, LOCK.lapsed(nowSeconds()), LOCK.ownedBy(executionId))),
      },
    },
    lock: { moduleName, environment },
  }));
}

/**
 * The lock a cancelled transaction failed on: the first lock item whose condition failed, i.e.
 * that someone else holds. Undefined when the transaction failed for another reason.
 */
export function heldLock(items: readonly TaggedItem[], reasons: readonly { Code?: string }[]): LockRef | undefined {
  const i = reasons.findIndex((r, index) => r.Code === 'ConditionalCheckFailed' && items[index]?.lock !== undefined);
  return i >= 0 ? items[i].lock : undefined;
}

export interface HeldLock extends LockRef {
  /** The execution holding it now; undefined if it was released in the meantime. */
  holder?: string;
}

/** Who holds a lock a transaction failed on, for a 409 that names the running deployment. */
export async function describeHeldLock(lock: LockRef): Promise<HeldLock> {
  return { ...lock, holder: (await getLock(lock.moduleName, lock.environment))?.executionId };
}

export async function getLock(moduleName: string, environment: Environment): Promise<LockItem | undefined> {
  const r = await dynamo().send(new GetCommand({ TableName: tableName('locks'), Key: { lockKey: lockKey(moduleName, environment) }, ConsistentRead: true }));
  return r.Item as LockItem | undefined;
}

/**
 * Renew the leases of an execution's locks: a lock still ours is extended; one that lapsed or was
 * released is taken back (nobody else took it meanwhile) only while the deployment is still open,
 * checked in the same transaction, so a step still in flight when its execution was stopped and
 * settled (ReconcileExecution released the locks) cannot lock the module again. A lock someone
 * else holds now is left alone; its environment is returned, so a step about to change nodes can
 * refuse to. A settled deployment's step gets DeploymentSettled.
 */
async function renewLocks(moduleName: string, environments: Environment[], executionId: string, seconds = config.lockLeaseSeconds()): Promise<Environment[]> {
  const now = nowSeconds();
  const updateOf = (environment: Environment, condition: Condition) => ({
    TableName: tableName('locks'),
    Key: { lockKey: lockKey(moduleName, environment) },
    ...withCondition(
      {
        UpdateExpression: 'SET #executionId = :holder, #expiresAt = :until, acquiredAt = if_not_exists(acquiredAt, :at)',
        ExpressionAttributeNames: { '#executionId': 'executionId', '#expiresAt': 'expiresAt' },
        ExpressionAttributeValues: { ':holder': executionId, ':until': now + seconds, ':at': new Date().toISOString() },
      },
      condition,
    ),
  });
  const lost = await Promise.all(
    environments.map(async (environment) => {
      // The common case, one write: the lock is still ours.
      try {
        await dynamo().send(new UpdateCommand(updateOf(environment, LOCK.ownedBy(executionId))));
        return undefined;
      } catch (e) {
        if (!isConditionFailure(e)) throw e;
      }
      try {
        await dynamo().send(
          new TransactWriteCommand({
            TransactItems: [
              { ConditionCheck: { TableName: tableName('deployments'), Key: { executionId }, ...conditionInput(DEPLOYMENT_OPEN) } },
              { Update: updateOf(environment, or(LOCK.free, LOCK.lapsed(now))) },
            ],
          }),
        );
        return undefined;
      } catch (e) {
        if (e instanceof TransactionCanceledException && e.CancellationReasons?.[0]?.Code === 'ConditionalCheckFailed')
          throw new AppError('DeploymentSettled', `deployment ${executionId} is settled; its locks are not taken again`);
        if (!isConditionFailure(e)) throw e;
        return environment;
      }
    }),
  );
  return lost.filter((e): e is Environment => e !== undefined);
}

/**
 * Renew every lock of a deployment (one per environment up to its target) for one step and the
 * wait it leads into (domain/locks.ts). Returns the environments whose lock another execution holds.
 */
export function renewDeploymentLocks(
  d: { moduleName: string; targetEnvironment: Environment },
  executionId: string,
  wait: LeaseWait = {},
): Promise<Environment[]> {
  return renewLocks(d.moduleName, environmentsUpTo(d.targetEnvironment), executionId, leaseSeconds(config.lockLeaseSeconds(), wait));
}

/** A step that changes nodes of `environment` refuses to when another execution holds its lock. */
export function lockLost(moduleName: string, environment: Environment, executionId: string): AppError {
  return new AppError(
    'LockLost',
    `${executionId} no longer holds the ${moduleName} lock of ${environment} (its lease lapsed and another deployment took it); no node of ${environment} is changed`,
  );
}

export async function releaseLocks(moduleName: string, environments: Environment[], executionId: string): Promise<void> {
  await Promise.all(
    environments.map((environment) =>
      ignoreConditionFailure(
        dynamo().send(
          new DeleteCommand({
            TableName: tableName('locks'),
            Key: { lockKey: lockKey(moduleName, environment) },
            ConditionExpression: 'executionId = :me',
            ExpressionAttributeValues: { ':me': executionId },
          }),
        ),
      ),
    ),
  );
}
