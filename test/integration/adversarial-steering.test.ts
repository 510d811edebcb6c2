/**
 * Steering and approval gates under races and partial failures (adversarial review of issue 11):
 * an approval that lands after a cancel must decide nothing — neither turn a Cancelled deployment
 * back to Running nor record an approval that reaches no pipeline — and must answer 409 saying why.
 */
import { GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { agentVersions, api, startTestCloud, waitForDeployment } from './harness.ts';

describe('approval decisions racing a cancel', () => {
  let cloud: LocalCloud;
  const get = async (id: string) => (await api(cloud, 'GET', `/api/v1/deployments/${id}`, { token: cloud.tokens.Viewer })).body;
  const deployToStaging = async () => {
    const r = await api(cloud, 'POST', '/api/v1/deployments', {
      token: cloud.tokens.Deployer,
      body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Staging' },
    });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    const id = r.body.executionId as string;
    await waitForDeployment(cloud, id, ['WaitingForApproval']);
    return id;
  };
  const approve = (id: string) => api(cloud, 'POST', `/api/v1/approvals/deployments/${id}/approve`, { token: cloud.tokens.Approver, body: { reason: 'go' } });
  const cancel = (id: string) => api(cloud, 'POST', `/api/v1/deployments/${id}/cancel`, { token: cloud.tokens.Deployer, body: { reason: 'stop' } });
  const approval = async (id: string) =>
    (await cloud.ddb.send(new GetCommand({ TableName: cloud.tableNames.approvals, Key: { executionId: id, environment: 'Staging' }, ConsistentRead: true })))
      .Item;
  const actions = async (id: string) =>
    ((await api(cloud, 'GET', `/api/v1/audit?deploymentId=${id}&limit=500`, { token: cloud.tokens.Admin })).body.items as { action: string }[]).map(
      (e) => e.action,
    );
  const until = async (check: () => Promise<boolean> | boolean, what: string, ms = 90_000) => {
    const deadline = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const settledCancelled = async (id: string) => {
    await until(async () => (await get(id)).rollback?.status === 'Succeeded', `the rollback of cancelled ${id}`);
    expect((await get(id)).status).toBe('Cancelled');
  };

  beforeAll(async () => {
    cloud = await startTestCloud({
      fleet: { Development: 1, QA: 1, Staging: 2, Production: 2 },
      env: { CANCEL_SETTLE_WAIT_MS: '30000', AGENT_TIMEOUT_MS: '8000' },
    });
  });
  afterAll(async () => cloud?.stop());

  it('an approve after the cancel was recorded, before the pipeline stopped: 409, nothing decided, and the cancel completes', async () => {
    const id = await deployToStaging();
    // The cancel's first step (its audited mark) is written; StopExecution has not run yet.
    await cloud.ddb.send(
      new UpdateCommand({
        TableName: cloud.tableNames.deployments,
        Key: { executionId: id },
        UpdateExpression: 'SET cancellation = :c',
        ExpressionAttributeValues: { ':c': { requestedBy: 'dev-deployer', requestedAt: new Date().toISOString(), reason: 'stop' } },
      }),
    );
    const r = await approve(id);
    expect([r.status, r.body.code], JSON.stringify(r.body)).toEqual([409, 'DeploymentCancelled']);
    expect(r.body.message).toContain('Nothing was changed');
    expect(await approval(id)).toMatchObject({ status: 'Pending', decisions: [] });
    expect((await get(id)).status).toBe('WaitingForApproval');
    expect(await actions(id)).not.toContain('approval.approved');
    // The cancel, sent again, drives the rest.
    expect((await cancel(id)).status).toBe(202);
    await settledCancelled(id);
    expect(Object.values(agentVersions(cloud, 'stg'))).toEqual(['1.0.0', '1.0.0']);
  });

  it('an approve of a Cancelled deployment whose gate was not closed yet (reconciler cut off): 409, it stays Cancelled', async () => {
    const id = await deployToStaging();
    expect((await cancel(id)).status).toBe(202);
    await settledCancelled(id);
    // The reconciler settled it but never got to close the gate (the process died in between).
    await cloud.ddb.send(
      new UpdateCommand({
        TableName: cloud.tableNames.approvals,
        Key: { executionId: id, environment: 'Staging' },
        UpdateExpression: 'SET #s = :p REMOVE decidedAt',
        ExpressionAttributeNames: { '#s': 'status' },
        ExpressionAttributeValues: { ':p': 'Pending' },
      }),
    );
    const before = await get(id);
    const r = await approve(id);
    expect([r.status, r.body.code], JSON.stringify(r.body)).toEqual([409, 'DeploymentCancelled']);
    const after = await get(id);
    expect(after.status).toBe('Cancelled');
    expect(after.updatedAt).toBe(before.updatedAt);
    expect((await approval(id))?.decisions).toEqual([]);
    expect(await actions(id)).not.toContain('approval.approved');
  });

  it('cancel and approve sent at the same moment: whichever wins, the deployment ends Cancelled with every node back', async () => {
    const id = await deployToStaging();
    const [c, a] = await Promise.all([cancel(id), approve(id)]);
    expect(c.status, JSON.stringify(c.body)).toBe(202);
    expect([200, 409, 410], JSON.stringify(a.body)).toContain(a.status);
    await settledCancelled(id);
    for (const prefix of ['dev', 'qa', 'stg']) expect(Object.values(agentVersions(cloud, prefix)), prefix).not.toContain('1.1.0');
    // An approval is in the trail only if the approver was told it counted.
    expect((await actions(id)).includes('approval.approved')).toBe(a.status === 200);
  });

  it('a cancel sent again repairs a deployment left Running after its pipeline was stopped (its reconcile lost): Cancelled, rolled back', async () => {
    const id = await deployToStaging();
    expect((await cancel(id)).status).toBe(202);
    await settledCancelled(id);
    // Put the record back as a lost reconcile (or the old approve race) left it: Running with its
    // cancellation, its pipeline stopped long ago. Re-sending the cancel waited for a settlement that
    // never came and answered "Running" (or 500 past the function's timeout), for ever.
    await cloud.ddb.send(
      new UpdateCommand({
        TableName: cloud.tableNames.deployments,
        Key: { executionId: id },
        UpdateExpression: 'SET #s = :r REMOVE finishedAt',
        ExpressionAttributeNames: { '#s': 'status' },
        ExpressionAttributeValues: { ':r': 'Running' },
      }),
    );
    const r = await cancel(id);
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    expect(r.body.status).toBe('Cancelled');
    await settledCancelled(id);
    expect((await actions(id)).filter((a) => a === 'deployment.cancelled')).toHaveLength(2);
  });
});
