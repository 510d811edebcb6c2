import { describe, expect, it } from 'vitest';
import { EXECUTION_STATUS_RULES, executionStatusPattern } from '../../../functions/catalog.ts';
import { LocalEventBus, matchesPattern } from '../../../localcloud/eventBus.ts';
import { stateMachineArn } from '../../../localcloud/stepfunctions.ts';

const statusChange = (status: string, machine: string) => ({
  source: 'aws.states',
  'detail-type': 'Step Functions Execution Status Change',
  detail: { status, stateMachineArn: stateMachineArn(machine), executionArn: 'arn:x', name: 'n' },
});

describe('matchesPattern', () => {
  const pattern = executionStatusPattern(EXECUTION_STATUS_RULES.ReconcileExecutions, (id) => stateMachineArn(`kmod-${id}`));

  it("matches the reconciler's rule exactly as EventBridge would", () => {
    expect(matchesPattern(pattern, statusChange('ABORTED', 'kmod-Pipeline'))).toBe(true);
    expect(matchesPattern(pattern, statusChange('TIMED_OUT', 'kmod-Rollback'))).toBe(true);
    expect(matchesPattern(pattern, statusChange('FAILED', 'kmod-Pipeline'))).toBe(true);
    expect(matchesPattern(pattern, statusChange('SUCCEEDED', 'kmod-Pipeline'))).toBe(false);
    expect(matchesPattern(pattern, statusChange('RUNNING', 'kmod-Pipeline'))).toBe(false);
    expect(matchesPattern(pattern, statusChange('FAILED', 'kmod-Canary'))).toBe(false);
    expect(matchesPattern(pattern, { ...statusChange('FAILED', 'kmod-Pipeline'), source: 'aws.ec2' })).toBe(false);
  });

  it('needs every field the pattern names; an array field matches on any of its values', () => {
    expect(matchesPattern({ detail: { status: ['FAILED'] } }, { detail: {} })).toBe(false);
    expect(matchesPattern({ detail: { status: ['FAILED'] } }, {})).toBe(false);
    expect(matchesPattern({ resources: ['a'] }, { resources: ['b', 'a'] })).toBe(true);
    expect(matchesPattern({ resources: ['a'] }, { resources: ['b'] })).toBe(false);
  });
});

describe('LocalEventBus', () => {
  it("delivers a matching event to the rule's function, retrying a failing one, and nothing else", async () => {
    const calls: string[] = [];
    let failures = 1;
    const bus = new LocalEventBus(
      {
        invoke: async (arn) => {
          calls.push(arn);
          if (failures-- > 0) throw new Error('cold start went wrong');
          return null;
        },
      },
      { retryDelaysMs: [1, 1] },
    );
    await bus.put(statusChange('ABORTED', 'kmod-Pipeline'));
    expect(calls).toEqual([
      'arn:aws:lambda:us-east-1:000000000000:function:kmod-ReconcileExecution',
      'arn:aws:lambda:us-east-1:000000000000:function:kmod-ReconcileExecution',
    ]);
    await bus.put(statusChange('SUCCEEDED', 'kmod-Pipeline'));
    expect(calls).toHaveLength(2);
  });

  it('fails when the function keeps failing, so the sender can send the event again later', async () => {
    const bus = new LocalEventBus({ invoke: async () => Promise.reject(new Error('down')) }, { retryDelaysMs: [1] });
    await expect(bus.put(statusChange('FAILED', 'kmod-Rollback'))).rejects.toThrow('down');
  });
});
