import { describe, expect, it } from 'vitest';
import { deploymentIdOf, executionStatusChangeSchema, settlementOf } from '../../../functions/domain/executionStatus.ts';

describe('settlementOf', () => {
  it('cancels the deployment of an execution stopped from outside, with who said why', () => {
    expect(settlementOf('ABORTED', 'Operator', 'stuck at the gate')).toEqual({
      deploymentStatus: 'Cancelled',
      code: 'ExecutionAborted',
      message: 'its execution was stopped (Operator: stuck at the gate)',
    });
    expect(settlementOf('ABORTED', null, null).message).toBe('its execution was stopped');
  });

  it('fails the deployment of an execution that timed out or failed, keeping the error as the code', () => {
    expect(settlementOf('TIMED_OUT')).toEqual({ deploymentStatus: 'Failed', code: 'ExecutionTimedOut', message: 'its execution timed out' });
    expect(settlementOf('FAILED', 'States.Runtime', 'the local cloud could not resume this execution')).toEqual({
      deploymentStatus: 'Failed',
      code: 'States.Runtime',
      message: 'its execution failed (States.Runtime: the local cloud could not resume this execution)',
    });
    expect(settlementOf('FAILED').code).toBe('ExecutionFailed');
  });
});

describe('deploymentIdOf', () => {
  const id = 'dep-0mwy4c29p-f65fca188182';

  it("reads the deployment from the execution's input", () => {
    expect(deploymentIdOf('anything', JSON.stringify({ executionId: id, environments: ['QA'] }))).toBe(id);
  });

  it('falls back to the name when the input is missing, unreadable or names no deployment', () => {
    expect(deploymentIdOf(id, null)).toBe(id);
    expect(deploymentIdOf(`${id}-rollback-1-mh2x1`, '{not json')).toBe(id);
    expect(deploymentIdOf(id, JSON.stringify({ executionId: 'not-a-deployment' }))).toBe(id);
  });

  it('names no deployment for executions that are not one', () => {
    expect(deploymentIdOf('a3c1f9e2-5b1e-4c4e-9d7c-1f0b2c3d4e5f', '{}')).toBeUndefined();
    expect(deploymentIdOf(`${id}x`, undefined)).toBeUndefined();
  });
});

describe('executionStatusChangeSchema', () => {
  const event = {
    version: '0',
    id: '315c1398-40ff-a850-213b-158f73e60175',
    'detail-type': 'Step Functions Execution Status Change',
    source: 'aws.states',
    account: '012345678912',
    time: '2026-12-01T10:00:00Z',
    region: 'us-east-1',
    resources: ['arn:aws:states:us-east-1:012345678912:execution:kmod-Pipeline:dep-0mwy4c29p-f65fca188182'],
    detail: {
      executionArn: 'arn:aws:states:us-east-1:012345678912:execution:kmod-Pipeline:dep-0mwy4c29p-f65fca188182',
      stateMachineArn: 'arn:aws:states:us-east-1:012345678912:stateMachine:kmod-Pipeline',
      name: 'dep-0mwy4c29p-f65fca188182',
      status: 'ABORTED',
      startDate: 1_795_000_000_000,
      stopDate: 1_795_000_100_000,
      input: '{"executionId":"dep-0mwy4c29p-f65fca188182"}',
      output: null,
      inputDetails: { included: true },
      outputDetails: null,
      error: null,
      cause: null,
    },
  };

  it('accepts the event as AWS documents it (null error, cause and output included)', () => {
    expect(executionStatusChangeSchema.parse(event).detail.status).toBe('ABORTED');
  });

  it('refuses other events', () => {
    expect(executionStatusChangeSchema.safeParse({ ...event, source: 'aws.ec2' }).success).toBe(false);
    expect(executionStatusChangeSchema.safeParse({ ...event, detail: { ...event.detail, status: 'PAUSED' } }).success).toBe(false);
  });
});
