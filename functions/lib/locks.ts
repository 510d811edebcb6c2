/**
 * One deployment at a time per module and environment: a lock item per (module, environment)
 * owned by an execution id, with a lease. Taking a lock is a conditional write (free, expired,
 * or already ours); every stage renews the lease, so a crashed execution's lock lapses by itself.
 */
import { DeleteCommand, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { Environment } from '../domain/environments.ts';
import { dynamo } from './aws.ts';
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

/** The Put that takes a lock, for use inside the transaction that creates the deployment. */
export function acquireLockItem(moduleName: string, environment: Environment, executionId: string) {
  return {
    TableName: tableName('locks'),
    Item: { lockKey: lockKey(moduleName, environment), executionId, acquiredAt: new Date().toISOString(), expiresAt: nowSeconds() + config.lockLeaseSeconds() },
    ConditionExpression: 'attribute_not_exists(lockKey) OR expiresAt < :now OR executionId = :me',
    ExpressionAttributeValues: { ':now': nowSeconds(), ':me': executionId },
  };
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
