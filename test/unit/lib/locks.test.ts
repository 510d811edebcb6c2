import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { heldLock, lockItems, untagged, type TaggedItem } from '../../../functions/lib/locks.ts';

const put = (table: string): TaggedItem => ({ item: { Put: { TableName: table, Item: {} } } });

describe('lockItems', () => {
  beforeEach(() => vi.stubEnv('LOCKS_TABLE', 'locks'));
  afterEach(() => vi.unstubAllEnvs());

  it('takes one lock per environment, each tagged with the lock it takes', () => {
    const items = lockItems('demo-kernel', ['Development', 'QA'], 'dep-1');
    expect(items.map((t) => t.lock)).toEqual([
      { moduleName: 'demo-kernel', environment: 'Development' },
      { moduleName: 'demo-kernel', environment: 'QA' },
    ]);
    expect(untagged(items).map((i) => i.Put?.Item?.lockKey)).toEqual(['demo-kernel#Development', 'demo-kernel#QA']);
  });

  it('succeeds on a free lock, a lapsed lease (takeover) or one already ours', () => {
    const now = Math.floor(Date.now() / 1000);
    const put = untagged(lockItems('demo-kernel', ['QA'], 'dep-1'))[0].Put!;
    expect(put.ConditionExpression).toBe('(attribute_not_exists(#lockKey)) OR (#expiresAt < :expiresAt_lt) OR (#executionId = :executionId_dep_1)');
    expect(put.ExpressionAttributeNames).toEqual({ '#lockKey': 'lockKey', '#expiresAt': 'expiresAt', '#executionId': 'executionId' });
    expect(put.ExpressionAttributeValues?.[':executionId_dep_1']).toBe('dep-1');
    expect(Math.abs(Number(put.ExpressionAttributeValues?.[':expiresAt_lt']) - now)).toBeLessThanOrEqual(1);
    expect(Number(put.Item?.expiresAt)).toBeGreaterThan(now);
  });
});

describe('heldLock', () => {
  const locks: TaggedItem[] = [
    { item: {}, lock: { moduleName: 'm', environment: 'Development' } },
    { item: {}, lock: { moduleName: 'm', environment: 'QA' } },
  ];
  // Deployment record, audit event, idempotency key, then the locks.
  const items = [put('deployments'), put('audit'), put('idempotency'), ...locks];

  it('names the first lock whose condition failed', () => {
    const reasons = [{ Code: 'None' }, { Code: 'None' }, { Code: 'None' }, { Code: 'None' }, { Code: 'ConditionalCheckFailed' }];
    expect(heldLock(items, reasons)).toEqual({ moduleName: 'm', environment: 'QA' });
    const both = [{ Code: 'None' }, { Code: 'None' }, { Code: 'None' }, { Code: 'ConditionalCheckFailed' }, { Code: 'ConditionalCheckFailed' }];
    expect(heldLock(items, both)).toEqual({ moduleName: 'm', environment: 'Development' });
  });

  it('does not mistake a failed condition on another item for a held lock', () => {
    expect(heldLock(items, [{ Code: 'None' }, { Code: 'None' }, { Code: 'ConditionalCheckFailed' }, { Code: 'None' }, { Code: 'None' }])).toBeUndefined();
    expect(heldLock(items, [{ Code: 'ConditionalCheckFailed' }, { Code: 'None' }, { Code: 'None' }, { Code: 'None' }, { Code: 'None' }])).toBeUndefined();
  });

  it('finds the lock wherever the builder put it, whatever comes before it', () => {
    const shorter = [put('deployments'), put('audit'), ...locks];
    expect(heldLock(shorter, [{ Code: 'None' }, { Code: 'None' }, { Code: 'ConditionalCheckFailed' }, { Code: 'None' }])).toEqual({
      moduleName: 'm',
      environment: 'Development',
    });
    const locksFirst = [...locks, put('deployments')];
    expect(heldLock(locksFirst, [{ Code: 'None' }, { Code: 'None' }, { Code: 'ConditionalCheckFailed' }])).toBeUndefined();
  });

  it('answers undefined for conflicts, other failures, and missing reasons', () => {
    expect(
      heldLock(
        items,
        items.map(() => ({ Code: 'TransactionConflict' })),
      ),
    ).toBeUndefined();
    expect(heldLock(items, [])).toBeUndefined();
    expect(heldLock([], [{ Code: 'ConditionalCheckFailed' }])).toBeUndefined();
  });
});
