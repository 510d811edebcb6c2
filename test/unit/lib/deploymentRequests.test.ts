/**
 * The data layer's decisions around its transactions (retry, replay, lock conflicts, compensation)
 * against fake AWS clients; the integration tests run the same paths against DynamoDB Local.
 */
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { DeploymentRecord } from '../../../functions/domain/deployment.ts';

type Command = { constructor: { name: string }; input: Record<string, any> };
const sent: Command[] = [];
const fake = {
  dynamo: vi.fn<(c: Command) => Promise<unknown>>(),
  sfn: vi.fn<(c: Command) => Promise<unknown>>(),
};
function record(c: Command, answer: (c: Command) => unknown) {
  sent.push(c);
  return answer(c);
}
vi.mock('../../../functions/lib/aws.ts', () => ({
  dynamo: () => ({ send: (c: Command) => record(c, fake.dynamo) }),
  stepFunctions: () => ({ send: (c: Command) => record(c, fake.sfn) }),
  // lib/telemetry.ts registers the Tracer's capture of each client made.
  onClientCreated: () => () => undefined,
}));
const { requestDeployment, requestRollback } = await import('../../../functions/lib/deploymentRequests.ts');

const TABLES = {
  DEPLOYMENTS_TABLE: 'deployments',
  SETTINGS_TABLE: 'settings',
  METRICS_TABLE: 'metrics',
  IDEMPOTENCY_TABLE: 'idempotency',
  AUDIT_TABLE: 'audit',
  MODULES_TABLE: 'modules',
  LOCKS_TABLE: 'locks',
  CLUSTERS_TABLE: 'clusters',
};
const PIPELINE = 'arn:aws:states:us-east-1:123456789012:stateMachine:kmod-pipeline';
const request = { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'QA' as const };
const cancelled = (...codes: string[]) =>
  new TransactionCanceledException({ message: 'cancelled', $metadata: {}, CancellationReasons: codes.map((Code) => ({ Code })) });
const named = (name: string) => sent.filter((c) => c.constructor.name === name);

/** Reads: the module exists, the given lock holder, the given idempotency and deployment items. */
function reads(opts: { lockHolder?: string; idempotency?: Record<string, unknown>; deployment?: Partial<DeploymentRecord> } = {}) {
  return async (c: Command) => {
    if (c.constructor.name !== 'GetCommand') return {};
    switch (c.input.TableName) {
      case 'modules':
        return { Item: { moduleName: request.moduleName, version: request.version } };
      case 'locks':
        return { Item: opts.lockHolder ? { executionId: opts.lockHolder } : undefined };
      case 'idempotency':
        return { Item: opts.idempotency };
      case 'deployments':
        return { Item: opts.deployment };
    }
    return {};
  };
}

beforeEach(() => {
  for (const [k, v] of Object.entries({ ...TABLES, PIPELINE_STATE_MACHINE_ARN: PIPELINE, ROLLBACK_STATE_MACHINE_ARN: 'arn:rollback' })) vi.stubEnv(k, v);
  sent.length = 0;
  fake.dynamo.mockReset();
  fake.sfn.mockReset();
  // As Step Functions answers: the execution's ARN is the machine's, with its name.
  fake.sfn.mockImplementation(async (c) => ({ executionArn: `${String(c.input.stateMachineArn).replace(':stateMachine:', ':execution:')}:${c.input.name}` }));
});
afterEach(() => vi.unstubAllEnvs());

describe('requestDeployment', () => {
  it('in an API request, records its correlation id on the deployment and passes it to the pipeline', async () => {
    fake.dynamo.mockImplementation(reads());
    const { correlationStore } = await import('../../../functions/lib/traceContext.ts');
    const r = await correlationStore.run({ correlationId: 'ticket-4711' }, () => requestDeployment(request, { requestedBy: 'dan' }));
    expect(r.outcome).toBe('started');
    expect(named('TransactWriteCommand')[0].input.TransactItems[0].Put.Item.correlationId).toBe('ticket-4711');
    expect(JSON.parse(named('StartExecutionCommand')[0].input.input)).toMatchObject({
      executionId: (r as { executionId: string }).executionId,
      correlationId: 'ticket-4711',
    });
  });

  it('writes record (with its execution ARN), audit event, every lock up to the target and the module check in one transaction, then starts the pipeline', async () => {
    fake.dynamo.mockImplementation(reads());
    const r = await requestDeployment(request, { requestedBy: 'dan' });
    expect(r).toMatchObject({ outcome: 'started', targetEnvironment: 'QA' });
    const executionId = (r as { executionId: string }).executionId;
    const [tx] = named('TransactWriteCommand');
    expect(tx.input.TransactItems.map((i: any) => (i.Put ?? i.ConditionCheck ?? i.Update).TableName)).toEqual([
      'deployments',
      'audit',
      'locks',
      'locks',
      'clusters',
      'clusters',
      'modules',
      'metrics',
      // The audit event's chain head, appended (docs/adr/0032-tamper-evident-audit.md).
      'audit',
    ]);
    expect(tx.input.TransactItems[0].Put.Item.executionArn).toBe(`arn:aws:states:us-east-1:123456789012:execution:kmod-pipeline:${executionId}`);
    // The version must be registered: a condition of the transaction, not a read before it.
    expect(tx.input.TransactItems[6].ConditionCheck).toEqual({
      TableName: 'modules',
      Key: { moduleName: 'demo-kernel', version: '1.1.0' },
      ConditionExpression: 'attribute_exists(moduleName)',
    });
    expect(named('GetCommand').map((c) => c.input.TableName)).not.toContain('modules');
    expect(tx.input.TransactItems[8].Update).toMatchObject({
      Key: { subject: `#chain|${tx.input.TransactItems[1].Put.Item.subject}|deployment`, sk: '#head' },
      ConditionExpression: 'attribute_not_exists(subject)',
      ExpressionAttributeValues: { ':seq': 1, ':hash': tx.input.TransactItems[1].Put.Item.hash },
    });
    // The started counter is added in the same transaction (docs/adr/0027-prometheus-metrics.md).
    expect(Object.values(tx.input.TransactItems[7].Update.ExpressionAttributeNames)).toEqual([
      JSON.stringify(['kmod_deployments_started_total', { environment: 'QA' }]),
    ]);
    // Each environment on the way must not be Degraded for the module (issue 15, defect 9).
    expect(tx.input.TransactItems.slice(4, 6).map((i: any) => [i.ConditionCheck.Key.environment, i.ConditionCheck.ConditionExpression])).toEqual([
      ['Development', 'attribute_not_exists(#dm.#mod)'],
      ['QA', 'attribute_not_exists(#dm.#mod)'],
    ]);
    expect(tx.input.TransactItems[1].Put.Item).toMatchObject({ action: 'deployment.requested', actor: 'dan' });
    expect(named('StartExecutionCommand')[0].input).toMatchObject({ stateMachineArn: PIPELINE, name: executionId });
    // Outside an API request there is no request id: the pipeline still gets one (JSONPath needs it), the execution id.
    expect(JSON.parse(named('StartExecutionCommand')[0].input.input).correlationId).toBe(executionId);
    // The ARN was recorded with the request: nothing is written after the start.
    expect(named('UpdateCommand')).toEqual([]);
  });

  it('records the ARN the service answered when it is not the one derived', async () => {
    fake.dynamo.mockImplementation(reads());
    fake.sfn.mockResolvedValue({ executionArn: 'arn:aws:states:us-east-1:123456789012:execution:elsewhere:x' });
    const r = await requestDeployment(request, { requestedBy: 'dan' });
    expect(r.outcome).toBe('started');
    expect(named('UpdateCommand').map((c) => c.input.ExpressionAttributeValues)).toEqual([
      { ':arn': 'arn:aws:states:us-east-1:123456789012:execution:elsewhere:x' },
    ]);
  });

  it('answers a version that is not registered (its condition check failed) as unknown, and starts nothing', async () => {
    fake.dynamo.mockImplementation(async (c) => {
      // Record, audit, locks of Development and QA, Degraded checks of both, then the module check.
      if (c.constructor.name === 'TransactWriteCommand') throw cancelled('None', 'None', 'None', 'None', 'None', 'None', 'ConditionalCheckFailed');
      return reads()(c);
    });
    expect(await requestDeployment(request, { requestedBy: 'dan' })).toEqual({ outcome: 'unknownModule' });
    expect(named('StartExecutionCommand')).toEqual([]);
  });

  it('refuses a deployment through a Degraded environment (the condition check that failed names it), and starts nothing', async () => {
    const base = reads();
    fake.dynamo.mockImplementation(async (c) => {
      // Record, audit, locks of Development and QA, then the Degraded checks of Development and QA.
      if (c.constructor.name === 'TransactWriteCommand') throw cancelled('None', 'None', 'None', 'None', 'None', 'ConditionalCheckFailed');
      if (c.constructor.name === 'GetCommand' && c.input.TableName === 'clusters') return { Item: undefined };
      return base(c);
    });
    expect(await requestDeployment(request, { requestedBy: 'dan' })).toEqual({
      outcome: 'degraded',
      moduleName: 'demo-kernel',
      environment: 'QA',
      mark: undefined,
    });
    expect(named('StartExecutionCommand')).toHaveLength(0);
  });

  it('retries a transaction cancelled by a concurrent one', async () => {
    const base = reads();
    let first = true;
    fake.dynamo.mockImplementation(async (c) => {
      if (c.constructor.name === 'TransactWriteCommand' && first) {
        first = false;
        throw cancelled('None', 'TransactionConflict', 'None', 'None');
      }
      return base(c);
    });
    expect((await requestDeployment(request, { requestedBy: 'dan' })).outcome).toBe('started');
    expect(named('TransactWriteCommand')).toHaveLength(2);
  });

  it('answers a held lock with its environment and the execution holding it, and starts nothing', async () => {
    const base = reads({ lockHolder: 'dep-holder' });
    fake.dynamo.mockImplementation(async (c) => {
      if (c.constructor.name === 'TransactWriteCommand') throw cancelled('None', 'None', 'None', 'ConditionalCheckFailed');
      return base(c);
    });
    expect(await requestDeployment(request, { requestedBy: 'dan' })).toEqual({
      outcome: 'locked',
      lock: { moduleName: 'demo-kernel', environment: 'QA', holder: 'dep-holder' },
    });
    expect(named('StartExecutionCommand')).toHaveLength(0);
  });

  it('throws a cancellation that is not about a lock', async () => {
    const base = reads();
    fake.dynamo.mockImplementation(async (c) => {
      if (c.constructor.name === 'TransactWriteCommand') throw cancelled('ConditionalCheckFailed', 'None', 'None', 'None');
      return base(c);
    });
    await expect(requestDeployment(request, { requestedBy: 'dan' })).rejects.toBeInstanceOf(TransactionCanceledException);
  });

  it('when the pipeline cannot start: fails the deployment (audited), gives the locks back, and throws', async () => {
    fake.dynamo.mockImplementation(reads());
    fake.sfn.mockRejectedValue(new Error('throttled'));
    await expect(requestDeployment(request, { requestedBy: 'dan' })).rejects.toThrow('throttled');
    const [, failed] = named('TransactWriteCommand');
    expect(failed.input.TransactItems[0].Update.ExpressionAttributeValues).toMatchObject({
      ':status': 'Failed',
      ':failure': { code: 'StartFailed', message: 'the pipeline could not be started: throttled' },
    });
    expect(failed.input.TransactItems[1].Put.Item).toMatchObject({ action: 'deployment.failed' });
    expect(named('DeleteCommand').map((c) => c.input.Key.lockKey)).toEqual(['demo-kernel#Development', 'demo-kernel#QA']);
  });

  it('replays an earlier request with the same key and body, and refuses the key with another body', async () => {
    // The first request records the hash of the body as given; a replay is answered from it.
    fake.dynamo.mockImplementation(reads());
    await requestDeployment(request, { requestedBy: 'dan', idempotencyKey: 'k1' });
    const stored = named('TransactWriteCommand')[0].input.TransactItems[2].Put.Item;
    expect(stored).toMatchObject({ key: 'dan#k1' });
    sent.length = 0;
    fake.dynamo.mockImplementation(reads({ idempotency: stored, deployment: { executionId: stored.executionId, targetEnvironment: 'QA' } }));
    expect(await requestDeployment(request, { requestedBy: 'dan', idempotencyKey: 'k1' })).toEqual({
      outcome: 'replayed',
      executionId: stored.executionId,
      targetEnvironment: 'QA',
    });
    expect(await requestDeployment({ ...request, version: '1.0.0' }, { requestedBy: 'dan', idempotencyKey: 'k1' })).toEqual({ outcome: 'keyReused' });
    expect(named('TransactWriteCommand')).toHaveLength(0);
  });
});

describe('requestRollback', () => {
  const d = { executionId: 'dep-1', moduleName: 'demo-kernel', targetEnvironment: 'QA' } as DeploymentRecord;

  it('answers an environment Degraded by another deployment with its mark, and starts nothing', async () => {
    const mark = {
      deploymentId: 'dep-0',
      version: '1.0.5',
      since: '2026-01-01T00:00:00.000Z',
      stuckNodes: { 'qa-02': { previousVersion: '1.0.0', message: 'x' } },
    };
    const base = reads();
    fake.dynamo.mockImplementation(async (c) => {
      // Update, audit, two locks, then the checks in the order of the environments asked for.
      if (c.constructor.name === 'TransactWriteCommand') throw cancelled('None', 'None', 'None', 'None', 'ConditionalCheckFailed', 'None');
      if (c.constructor.name === 'GetCommand' && c.input.TableName === 'clusters')
        return { Item: { environment: 'QA', degradedModules: { 'demo-kernel': mark } } };
      return base(c);
    });
    expect(await requestRollback(d, { requestedBy: 'amy', environments: ['QA', 'Development'] })).toEqual({
      outcome: 'degraded',
      moduleName: 'demo-kernel',
      environment: 'QA',
      mark,
    });
    expect(named('StartExecutionCommand')).toHaveLength(0);
  });

  it('tells a held lock from a rollback that is already running', async () => {
    const base = reads({ lockHolder: 'dep-2' });
    fake.dynamo.mockImplementation(async (c) => {
      if (c.constructor.name === 'TransactWriteCommand') throw cancelled('None', 'None', 'None', 'ConditionalCheckFailed');
      return base(c);
    });
    expect(await requestRollback(d, { requestedBy: 'amy', environments: ['QA'] })).toEqual({
      outcome: 'locked',
      lock: { moduleName: 'demo-kernel', environment: 'QA', holder: 'dep-2' },
    });
    fake.dynamo.mockImplementation(async (c) => {
      if (c.constructor.name === 'TransactWriteCommand') throw cancelled('ConditionalCheckFailed', 'None', 'None', 'None');
      return base(c);
    });
    expect(await requestRollback(d, { requestedBy: 'amy', environments: ['QA'] })).toEqual({ outcome: 'alreadyRunning' });
    expect(named('StartExecutionCommand')).toHaveLength(0);
  });

  it('marks the rollback Running (audited) with the locks, then starts the rollback machine', async () => {
    fake.dynamo.mockImplementation(reads());
    const r = await requestRollback(d, { requestedBy: 'amy', reason: 'bad', environments: ['QA', 'Development'] });
    expect(r.outcome).toBe('started');
    const [tx] = named('TransactWriteCommand');
    expect(tx.input.TransactItems[0].Update.ExpressionAttributeValues[':r']).toMatchObject({ status: 'Running', requestedBy: 'amy', reason: 'bad' });
    expect(tx.input.TransactItems[1].Put.Item).toMatchObject({ action: 'rollback.requested', details: { reason: 'bad', environments: ['QA', 'Development'] } });
    expect(tx.input.TransactItems.slice(2, 4).map((i: any) => i.Put.Item.lockKey)).toEqual(['demo-kernel#Development', 'demo-kernel#QA']);
    // Degraded by this very deployment is allowed (the repair); by another one, refused.
    const checks = tx.input.TransactItems.slice(4, 6).map((i: any) => i.ConditionCheck);
    expect(checks.map((c: any) => c.Key.environment)).toEqual(['QA', 'Development']);
    expect(checks[0].ConditionExpression).toBe('(attribute_not_exists(#dm.#mod)) OR (#dm.#mod.#dep = :degradedBy)');
    expect(checks[0].ExpressionAttributeValues).toEqual({ ':degradedBy': 'dep-1' });
    expect(named('StartExecutionCommand')[0].input).toMatchObject({ stateMachineArn: 'arn:rollback', name: expect.stringMatching(/^dep-1-rollback-1-/) });
    expect(JSON.parse(named('StartExecutionCommand')[0].input.input)).toMatchObject({ executionId: 'dep-1', correlationId: 'dep-1', requestedBy: 'amy' });
  });
});
