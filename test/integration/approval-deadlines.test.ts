/**
 * WatchApprovalDeadlines (docs/adr/0029-cloudwatch-dashboards-and-alarms.md) on the local cloud:
 * a real Staging gate opened by the pipeline with a short timeout is counted as near its deadline,
 * and the counts leave the function as CloudWatch EMF (the metrics the CDK alarms read).
 */
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { APPROVAL_METRICS } from '../../functions/domain/approvalDeadlines.ts';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { functionArn } from '../../localcloud/lambda.ts';
import { api, startTestCloud, waitForDeployment } from './harness.ts';

let cloud: LocalCloud;

beforeAll(async () => {
  cloud = await startTestCloud({
    env: {
      CANARY_BAKE_SECONDS: '1',
      // The Staging gate waits 10 minutes; the warning window is 15: it is near its deadline from the start.
      APPROVAL_TIMEOUT_SECONDS_STAGING: '600',
      APPROVAL_DEADLINE_WARNING_SECONDS: '900',
      // The local cloud keeps EMF off by default (its /metrics serves the counts); this test reads it.
      POWERTOOLS_METRICS_DISABLED: 'false',
    },
  });
}, 120_000);
afterAll(async () => {
  await cloud?.stop();
});

/** One run of the scheduled function, as EventBridge invokes it: its answer and the EMF documents it printed. */
async function watch(): Promise<{ result: Record<string, unknown>; emf: Record<string, any>[] }> {
  const lines: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  });
  try {
    const result = (await cloud.lambda.invoke(functionArn('WatchApprovalDeadlines'), {})) as Record<string, unknown>;
    const emf = lines
      .flatMap((l) => l.split('\n'))
      // The watcher's documents (other functions running meanwhile publish their own).
      .filter((l) => l.includes('"_aws"') && l.includes(`"${APPROVAL_METRICS.pending}"`))
      .map((l) => JSON.parse(l) as Record<string, any>);
    return { result, emf };
  } finally {
    spy.mockRestore();
  }
}

/** A Pending approval of a deployment that does not exist: only its status and deadline matter to the count. */
async function pendingApproval(executionId: string, deadline: Date) {
  await cloud.ddb.send(
    new PutCommand({
      TableName: cloud.tableNames.approvals,
      Item: {
        executionId,
        environment: 'Production',
        status: 'Pending',
        requestedAt: new Date(deadline.getTime() - 86_400_000).toISOString(),
        deadline: deadline.toISOString(),
        requestedBy: 'test',
        approvers: [],
        quorum: 1,
        decisions: [],
        moduleName: 'demo-kernel',
        version: '1.0.0',
        taskToken: 'unused',
        usedLinks: [],
      },
    }),
  );
}

describe('WatchApprovalDeadlines', () => {
  it('publishes pending, near-deadline and overdue approval counts as EMF, and zeros once the gate is decided', async () => {
    const r = await api(cloud, 'POST', '/api/v1/deployments', {
      token: cloud.tokens.Deployer,
      body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Staging' },
    });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    const id = r.body.executionId as string;
    const waiting = await waitForDeployment(cloud, id, ['WaitingForApproval']);
    const gate = waiting.stages.find((s: { name: string }) => s.name === 'Staging').approval;
    const left = Date.parse(gate.deadline) - Date.now();
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThanOrEqual(600_000);
    // Far from its deadline (3 h, outside the 15-minute window), and one whose gate never closed.
    await pendingApproval('exec-far-from-deadline', new Date(Date.now() + 3 * 3600_000));
    await pendingApproval('exec-overdue', new Date(Date.now() - 60_000));

    const first = await watch();
    expect(first.result).toEqual({ pending: 3, nearDeadline: 1, overdue: 1, warningSeconds: 900, nextDeadline: gate.deadline });
    expect(first.emf).toHaveLength(1);
    const [doc] = first.emf;
    expect(doc._aws.CloudWatchMetrics).toEqual([
      {
        Namespace: APPROVAL_METRICS.namespace,
        Dimensions: [['service']],
        Metrics: [
          { Name: APPROVAL_METRICS.pending, Unit: 'Count' },
          { Name: APPROVAL_METRICS.nearDeadline, Unit: 'Count' },
          { Name: APPROVAL_METRICS.overdue, Unit: 'Count' },
        ],
      },
    ]);
    expect(doc).toMatchObject({
      service: APPROVAL_METRICS.service,
      [APPROVAL_METRICS.pending]: 3,
      [APPROVAL_METRICS.nearDeadline]: 1,
      [APPROVAL_METRICS.overdue]: 1,
    });

    // The gate is decided: it leaves the count, and the zero is published (so the alarm goes back to OK).
    const decided = await api(cloud, 'POST', `/api/v1/approvals/deployments/${id}/approve`, { token: cloud.tokens.Approver, body: { reason: 'ok' } });
    expect(decided.status, JSON.stringify(decided.body)).toBe(200);
    const second = await watch();
    expect(second.result).toMatchObject({ pending: 2, nearDeadline: 0, overdue: 1 });
    expect(second.emf[0]).toMatchObject({ [APPROVAL_METRICS.nearDeadline]: 0, [APPROVAL_METRICS.pending]: 2 });
  }, 180_000);
});
