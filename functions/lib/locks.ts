/**
 * One deployment at a time per module and environment: a lock item per (module, environment)
 * owned by an execution id, with a lease. Taking a lock is a conditional write (free, expired,
 * or already ours); every stage renews the lease, so a crashed execution's lock lapses by itself.
 */
import { DeleteCommand, GetCommand, UpdateCommand, type TransactWriteCommandInput } from '@aws-sdk/lib-dynamodb';
import type { Environment } from '../domain/environments.ts';
import { dynamo } from './aws.ts';
import { CONDITIONS, conditionInput, or } from './conditions.ts';
import { config } from './config.ts';
import { ignoreConditionFailure } from './deployments.ts';
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

/** Extend our leases; a lock someone else holds now is left alone. */
export async function renewLocks(moduleName: string, environments: Environment[], executionId: string, seconds = config.lockLeaseSeconds()): Promise<void> {
  await Promise.all(
    environments.map((environment) =>
      ignoreConditionFailure(
        dynamo().send(
          new UpdateCommand({
            TableName: tableName('locks'),
            Key: { lockKey: lockKey(moduleName, environment) },
            UpdateExpression: 'SET expiresAt = :e',
            ConditionExpression: 'executionId = :me',
            ExpressionAttributeValues: { ':e': nowSeconds() + seconds, ':me': executionId },
          }),
        ),
      ),
    ),
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
