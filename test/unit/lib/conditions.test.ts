import { describe, expect, it } from 'vitest';
import { and, CONDITIONS, conditionInput, or, withCondition } from '../../../functions/lib/conditions.ts';

describe('condition parts', () => {
  it('name every attribute through a placeholder (reserved words such as key and status are safe)', () => {
    expect(CONDITIONS.notExists('key')).toEqual({ expression: 'attribute_not_exists(#key)', names: { '#key': 'key' } });
    expect(CONDITIONS.equals(['rollback', 'status'], 'Failed')).toEqual({
      expression: '#rollback.#status = :rollback_status_Failed',
      names: { '#rollback': 'rollback', '#status': 'status' },
      values: { ':rollback_status_Failed': 'Failed' },
    });
    expect(CONDITIONS.lessThan(['expiresAt'], 42)).toEqual({
      expression: '#expiresAt < :expiresAt_lt',
      names: { '#expiresAt': 'expiresAt' },
      values: { ':expiresAt_lt': 42 },
    });
  });

  it('derive value placeholders that DynamoDB accepts from any value', () => {
    const c = CONDITIONS.equals(['executionId'], 'dep-abc.1:x');
    expect(Object.keys(c.values!)).toEqual([':executionId_dep_abc_1_x']);
    expect(c.expression).toBe('#executionId = :executionId_dep_abc_1_x');
  });
});

describe('and / or', () => {
  const a = CONDITIONS.notExists('rollback');
  const b = CONDITIONS.equals(['rollback', 'status'], 'Failed');

  it('returns a single part unchanged', () => {
    expect(or(a)).toBe(a);
    expect(and(b)).toBe(b);
  });

  it('parenthesises each part and merges their placeholders', () => {
    expect(or(a, b)).toEqual({
      expression: '(attribute_not_exists(#rollback)) OR (#rollback.#status = :rollback_status_Failed)',
      names: { '#rollback': 'rollback', '#status': 'status' },
      values: { ':rollback_status_Failed': 'Failed' },
    });
    expect(and(CONDITIONS.notExists('key'), or(a, b)).expression).toBe(
      '(attribute_not_exists(#key)) AND ((attribute_not_exists(#rollback)) OR (#rollback.#status = :rollback_status_Failed))',
    );
  });

  it('keeps two values of one attribute apart, and refuses one placeholder bound to two values', () => {
    const either = or(CONDITIONS.equals(['status'], 'Running'), CONDITIONS.equals(['status'], 'Pending'));
    expect(either.values).toEqual({ ':status_Running': 'Running', ':status_Pending': 'Pending' });
    expect(() => and(CONDITIONS.lessThan(['expiresAt'], 1), CONDITIONS.lessThan(['expiresAt'], 2))).toThrow(/:expiresAt_lt is bound to two values/);
    expect(() => and({ expression: '#a = :v', names: { '#a': 'a' } }, { expression: '#a = :w', names: { '#a': 'b' } })).toThrow(/#a/);
  });

  it('refuses an empty composition', () => {
    expect(() => and()).toThrow();
    expect(() => or()).toThrow();
  });
});

describe('conditionInput / withCondition', () => {
  it('leaves out empty placeholder maps, which DynamoDB rejects', () => {
    expect(conditionInput({ expression: 'attribute_not_exists(lockKey)' })).toEqual({ ConditionExpression: 'attribute_not_exists(lockKey)' });
    expect(conditionInput(CONDITIONS.notExists('key'))).toEqual({
      ConditionExpression: 'attribute_not_exists(#key)',
      ExpressionAttributeNames: { '#key': 'key' },
    });
  });

  it("adds a condition to an update, merging the update's own placeholders", () => {
    const u = withCondition(
      {
        UpdateExpression: 'SET #rollback = :r',
        ExpressionAttributeNames: { '#rollback': 'rollback' },
        ExpressionAttributeValues: { ':r': { status: 'Running' } },
      },
      or(CONDITIONS.notExists('rollback'), CONDITIONS.equals(['rollback', 'status'], 'Failed')),
    );
    expect(u).toEqual({
      UpdateExpression: 'SET #rollback = :r',
      ConditionExpression: '(attribute_not_exists(#rollback)) OR (#rollback.#status = :rollback_status_Failed)',
      ExpressionAttributeNames: { '#rollback': 'rollback', '#status': 'status' },
      ExpressionAttributeValues: { ':r': { status: 'Running' }, ':rollback_status_Failed': 'Failed' },
    });
    expect(() =>
      withCondition({ ExpressionAttributeValues: { ':rollback_status_Failed': 'x' } }, CONDITIONS.equals(['rollback', 'status'], 'Failed')),
    ).toThrow();
  });
});
