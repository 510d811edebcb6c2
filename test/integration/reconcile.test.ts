/**
 * Nothing stays Running when an execution dies (issue 13, ADR 0014): an operator stops a
 * deployment's execution from outside with `aws stepfunctions stop-execution` against the local
 * endpoint, and the Execution Status Change event reaches ReconcileExecution, as the EventBridge
 * rule delivers it on AWS: the deployment ends Cancelled, its locks are released, it is audited.
 */
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { functionArn } from '../../localcloud/lambda.ts';
import { executionArnOf } from '../../localcloud/stepfunctions.ts';
import { awsCli, findAwsCliV2 } from './awsCli.ts';
import { agentVersions, api, startTestCloud, waitForDeployment } from './harness.ts';

const awsBin = await findAwsCliV2();
if (!awsBin) console.warn('stop-execution reconciliation skipped: no AWS CLI v2 on this machine (apt-get install awscli; .ci/run installs it)');

const LOCKED_ENVIRONMENTS = { Staging: ['Development', 'QA', 'Staging'], Production: ['Development', 'QA', 'Staging', 'Production'] };

describe.skipIf(!awsBin)('a deployment whose execution is stopped from outside', () => {
  let cloud: LocalCloud;
  const aws = (service: string, args: string[]) => awsCli(awsBin!, cloud, service, args);
  const deploy = async (targetEnvironment: 'Staging' | 'Production', version = '1.1.0') => {
    const r = await api(cloud, 'POST', '/api/v1/deployments', {
      token: cloud.tokens.Deployer,
      body: { moduleName: 'demo-kernel', version, targetEnvironment },
    });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    return r.body.executionId as string;
  };
  const approve = async (id: string) => {
    const r = await api(cloud, 'POST', `/api/v1/approvals/deployments/${id}/approve`, { token: cloud.tokens.Approver, body: { reason: 'go' } });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
  };
  const lock = async (environment: string) =>
    (await cloud.ddb.send(new GetCommand({ TableName: cloud.tableNames.locks, Key: { lockKey: `demo-kernel#${environment}` }, ConsistentRead: true }))).Item;
  /** The deployment's status is written first, its locks released right after (as Finalize does). */
  const locksReleased = (environments: string[]) =>
    until(async () => (await Promise.all(environments.map(lock))).every((l) => l === undefined), `the locks of ${environments.join(', ')} released`, 10_000);
  const auditOf = async (id: string) =>
    (await api(cloud, 'GET', `/api/v1/audit?deploymentId=${id}&limit=500`, { token: cloud.tokens.Admin })).body.items as any[];
  const pipelineArn = (id: string) => executionArnOf('kmod-Pipeline', id);
  const until = async (check: () => Promise<boolean>, what: string, ms = 60_000) => {
    const deadline = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  beforeAll(async () => {
    cloud = await startTestCloud({
      fleet: { Development: 1, QA: 1, Staging: 2, Production: 4 },
      // A bake long enough to stop the canary in it; an agent timeout long enough to stop a rollback waiting on one.
      env: { CANARY_BAKE_SECONDS: '600', NODES_PER_BATCH: '2', AGENT_TIMEOUT_MS: '30000' },
    });
  });
  afterAll(async () => cloud?.stop());

  it('stopped at an approval gate: Cancelled, its locks released, the approval closed, audited; the module deploys again at once', async () => {
    const id = await deploy('Staging');
    await waitForDeployment(cloud, id, ['WaitingForApproval']);
    for (const env of LOCKED_ENVIRONMENTS.Staging) expect((await lock(env))?.executionId).toBe(id);

    expect(
      await aws('stepfunctions', ['stop-execution', '--execution-arn', pipelineArn(id), '--error', 'Operator', '--cause', 'wrong version']),
    ).toHaveProperty('stopDate');
    const d = await waitForDeployment(cloud, id, ['Cancelled', 'Failed'], 30_000);
    expect(d.status).toBe('Cancelled');
    expect(d.failure).toMatchObject({ code: 'ExecutionAborted', message: 'its execution was stopped (Operator: wrong version)' });
    expect(d.finishedAt).toBeTruthy();
    await locksReleased(LOCKED_ENVIRONMENTS.Staging);
    expect((await aws('stepfunctions', ['describe-execution', '--execution-arn', pipelineArn(id)])).status).toBe('ABORTED');

    const approvals = await api(cloud, 'GET', `/api/v1/approvals/deployments/${id}`, { token: cloud.tokens.Viewer });
    expect(approvals.body.items).toEqual([expect.objectContaining({ environment: 'Staging', status: 'Expired' })]);
    const pending = await api(cloud, 'GET', '/api/v1/approvals/pending', { token: cloud.tokens.Viewer });
    expect(JSON.stringify(pending.body)).not.toContain(id);
    const late = await api(cloud, 'POST', `/api/v1/approvals/deployments/${id}/approve`, { token: cloud.tokens.Approver, body: { reason: 'late' } });
    expect([late.status, late.body.code]).toEqual([410, 'ApprovalExpired']);

    const audit = await auditOf(id);
    expect(audit).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          action: 'deployment.cancelled',
          actor: 'system:reconcile',
          details: expect.objectContaining({ executionStatus: 'ABORTED' }),
        }),
        expect.objectContaining({ action: 'approval.closed', actor: 'system:reconcile' }),
      ]),
    );
    // A step of the stopped execution still in flight (on AWS a running Lambda finishes after
    // StopExecution) renews its locks after the reconciler released them: refused, none is taken back.
    await expect(cloud.lambda.invoke(functionArn('SmokeTest'), { executionId: id, environment: 'Staging' })).rejects.toThrow(/DeploymentSettled/);
    for (const env of LOCKED_ENVIRONMENTS.Staging) expect(await lock(env)).toBeUndefined();

    // Its locks are free: the next deployment of the module is accepted (a Running one would get 409).
    const next = await deploy('Staging');
    await waitForDeployment(cloud, next, ['WaitingForApproval']);
    await aws('stepfunctions', ['stop-execution', '--execution-arn', pipelineArn(next)]);
    expect((await waitForDeployment(cloud, next, ['Cancelled'], 30_000)).failure.message).toBe('its execution was stopped');
  });

  it('stopped in a Production canary: the canary child stops too; the deployment is Cancelled and can then be rolled back', async () => {
    const id = await deploy('Production');
    await waitForDeployment(cloud, id, ['WaitingForApproval']);
    await approve(id);
    await waitForDeployment(cloud, id, ['Running']);
    await waitForDeployment(cloud, id, ['WaitingForApproval']);
    await approve(id);
    const canary = executionArnOf('kmod-Canary', `${id}-Production`);
    // The first wave is deployed and baking.
    await until(async () => cloud.sfn.history(canary).some((e) => e.type === 'WaitStateEntered'), 'the first bake');
    expect(Object.values(agentVersions(cloud, 'prod')).filter((v) => v === '1.1.0').length).toBeGreaterThan(0);

    await aws('stepfunctions', ['stop-execution', '--execution-arn', pipelineArn(id)]);
    const d = await waitForDeployment(cloud, id, ['Cancelled', 'Failed'], 30_000);
    expect(d.status).toBe('Cancelled');
    expect((await aws('stepfunctions', ['describe-execution', '--execution-arn', canary])).status).toBe('ABORTED');
    const production = d.stages.find((s: any) => s.name === 'Production');
    expect(production).toMatchObject({ status: 'Failed', message: 'its execution was stopped' });
    await locksReleased(LOCKED_ENVIRONMENTS.Production);

    // Cancelled is finished: the changed nodes go back on demand.
    const r = await api(cloud, 'POST', `/api/v1/deployments/${id}/rollback`, { token: cloud.tokens.Deployer, body: { reason: 'cancelled mid-canary' } });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    const rolledBack = await waitForDeployment(cloud, id, ['RolledBack'], 60_000);
    expect(rolledBack.rollback.status).toBe('Succeeded');
    expect(new Set(Object.values(agentVersions(cloud, 'prod')))).toEqual(new Set(['1.0.0']));
    await locksReleased(LOCKED_ENVIRONMENTS.Production);
  });

  it('a rollback whose execution is stopped ends Failed with the reason and gives its locks back; a second attempt then completes', async () => {
    const id = await deploy('Staging');
    await waitForDeployment(cloud, id, ['WaitingForApproval']);
    await approve(id);
    expect((await waitForDeployment(cloud, id, ['Succeeded', 'Failed', 'RolledBack'], 60_000)).status).toBe('Succeeded');
    // One node does not answer: the rollback waits on it, long enough to be stopped.
    const qa = Object.keys(agentVersions(cloud, 'qa'))[0];
    await api(cloud, 'PUT', `/_local/fleet/nodes/${qa}/faults`, { body: { unresponsive: true } });
    expect((await api(cloud, 'POST', `/api/v1/deployments/${id}/rollback`, { token: cloud.tokens.Deployer, body: {} })).status).toBe(202);
    const name = (await api(cloud, 'GET', `/api/v1/deployments/${id}`, { token: cloud.tokens.Viewer })).body.rollback.executionName as string;
    expect(name).toMatch(new RegExp(`^${id}-rollback-1-`));
    const rollbackArn = executionArnOf('kmod-Rollback', name);
    await until(async () => (await lock('Staging'))?.executionId === id, 'the rollback to hold the locks');

    await aws('stepfunctions', ['stop-execution', '--execution-arn', rollbackArn, '--cause', 'hung on a node']);
    await until(
      async () => (await api(cloud, 'GET', `/api/v1/deployments/${id}`, { token: cloud.tokens.Viewer })).body.rollback.status === 'Failed',
      'the rollback settled',
    );
    const d = (await api(cloud, 'GET', `/api/v1/deployments/${id}`, { token: cloud.tokens.Viewer })).body;
    expect(d.status).toBe('Succeeded'); // a rollback that did not complete leaves the deployment as it was
    expect(d.rollback.message).toBe('rollback did not complete: its execution was stopped (hung on a node)');
    await locksReleased(LOCKED_ENVIRONMENTS.Staging);
    expect(await auditOf(id)).toEqual(expect.arrayContaining([expect.objectContaining({ action: 'rollback.failed', actor: 'system:reconcile' })]));

    await api(cloud, 'DELETE', `/_local/fleet/nodes/${qa}/faults`);
    expect((await api(cloud, 'POST', `/api/v1/deployments/${id}/rollback`, { token: cloud.tokens.Deployer, body: {} })).status).toBe(202);
    expect((await waitForDeployment(cloud, id, ['RolledBack'], 90_000)).rollback.status).toBe('Succeeded');
  });

  it('is idempotent and conditional: a repeated event, an event for a settled deployment and one for an earlier rollback attempt change nothing', async () => {
    const reconcile = (detail: Record<string, unknown>) =>
      cloud.lambda.invoke(functionArn('ReconcileExecution'), {
        version: '0',
        id: 'e1',
        'detail-type': 'Step Functions Execution Status Change',
        source: 'aws.states',
        account: '000000000000',
        time: new Date().toISOString(),
        region: 'us-east-1',
        resources: [detail.executionArn],
        detail: { input: null, output: null, error: null, cause: null, startDate: 0, stopDate: 0, ...detail },
      });
    const id = await deploy('Staging');
    await waitForDeployment(cloud, id, ['WaitingForApproval']);
    await approve(id);
    expect((await waitForDeployment(cloud, id, ['Succeeded', 'Failed', 'RolledBack'], 60_000)).status).toBe('Succeeded');
    const before = (await auditOf(id)).length;
    const pipeline = { executionArn: pipelineArn(id), stateMachineArn: process.env.PIPELINE_STATE_MACHINE_ARN, name: id };
    expect(await reconcile({ ...pipeline, status: 'FAILED', error: 'X' })).toEqual({ action: 'alreadySettled', status: 'Succeeded' });
    expect(await reconcile({ ...pipeline, status: 'ABORTED' })).toEqual({ action: 'alreadySettled', status: 'Succeeded' });
    expect(await reconcile({ ...pipeline, status: 'SUCCEEDED' })).toEqual({ action: 'ignored', reason: 'the execution is SUCCEEDED' });
    const rollback = {
      executionArn: executionArnOf('kmod-Rollback', `${id}-rollback-1-old`),
      stateMachineArn: process.env.ROLLBACK_STATE_MACHINE_ARN,
      name: `${id}-rollback-1-old`,
      input: JSON.stringify({ executionId: id }),
    };
    expect(await reconcile({ ...rollback, status: 'ABORTED' })).toEqual({ action: 'alreadySettled', status: 'Succeeded' });
    expect((await api(cloud, 'GET', `/api/v1/deployments/${id}`, { token: cloud.tokens.Viewer })).body.status).toBe('Succeeded');
    expect((await auditOf(id)).length).toBe(before);
    // A strategy execution's end is its pipeline's to handle.
    expect(
      await reconcile({
        executionArn: executionArnOf('kmod-Canary', `${id}-Production`),
        stateMachineArn: 'arn:aws:states:us-east-1:000000000000:stateMachine:kmod-Canary',
        name: `${id}-Production`,
        status: 'FAILED',
      }),
    ).toEqual({
      action: 'ignored',
      reason: 'neither a pipeline nor a rollback execution',
    });
  });
});
