import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { agentVersions, api, expectDocumented, snapshotTables, startTestCloud, waitForDeployment } from './harness.ts';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import type { Email } from '../../localcloud/sns.ts';

let cloud: LocalCloud;
let secondApproverToken: string;
const SECOND_APPROVER = { sub: 'dev-approver-2', username: 'bob.approver', groups: ['Approver'] };

beforeAll(async () => {
  cloud = await startTestCloud({
    env: {
      CANARY_BAKE_SECONDS: '1',
      // Production needs two distinct approvers; both dev approvers may decide.
      APPROVAL_QUORUM_PRODUCTION: '2',
      APPROVERS: JSON.stringify({ Staging: ['dev-approver', 'dev-approver-2'], Production: ['dev-approver', 'dev-approver-2'] }),
    },
  });
  // The second approver is a user of the directory, as the first (a dev user) is.
  await cloud.ddb.send(
    new PutCommand({
      TableName: cloud.tableNames.users,
      Item: {
        userId: SECOND_APPROVER.sub,
        kind: 'user',
        username: SECOND_APPROVER.username,
        roles: SECOND_APPROVER.groups,
        enabled: true,
        createdAt: new Date().toISOString(),
        createdBy: 'test',
      },
    }),
  );
  secondApproverToken = await cloud.issuer.mint(SECOND_APPROVER);
});
afterAll(async () => {
  await cloud?.stop();
});

async function deploy(targetEnvironment: string, token = cloud.tokens.Deployer) {
  const r = await api(cloud, 'POST', '/api/v1/deployments', { token, body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment } });
  expect(r.status, JSON.stringify(r.body)).toBe(202);
  return r.body.executionId as string;
}

async function mailbox(): Promise<Email[]> {
  return ((await (await fetch(`${cloud.servicesUrl}/_mailbox/messages.json`)).json()) as { messages: Email[] }).messages;
}

/** Subjects of the mail to `to` about `executionId`, once at least `count` have arrived. */
async function mailFor(to: string, executionId: string, count: number): Promise<string[]> {
  let subjects: string[] = [];
  for (let i = 0; i < 50 && subjects.length < count; i++) {
    subjects = (await mailbox()).filter((m) => m.to === to && m.body.includes(executionId)).map((m) => m.subject);
    if (subjects.length < count) await new Promise((r) => setTimeout(r, 100));
  }
  return subjects;
}

async function approvalEmail(
  executionId: string,
  environment: string,
  to = 'amy.approver@example.com',
): Promise<{ approve: string; reject: string; email: Email }> {
  for (let i = 0; i < 100; i++) {
    const email = (await mailbox()).find((m) => m.to === to && m.body.includes(executionId) && m.subject.includes(`to ${environment}`));
    if (email) {
      return { email, approve: /Approve: (\S+)/.exec(email.body)![1], reject: /Reject: {2}(\S+)/.exec(email.body)![1] };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no approval email for ${executionId} ${environment} to ${to}`);
}

async function auditActions(executionId: string) {
  const r = await cloud.ddb.send(
    new QueryCommand({
      TableName: cloud.tableNames.audit,
      KeyConditionExpression: 'subject = :s',
      ExpressionAttributeValues: { ':s': `deployment#${executionId}` },
    }),
  );
  return (r.Items ?? []).map((i) => ({ action: i.action as string, actor: i.actor as string, details: i.details as Record<string, unknown> }));
}

const form = (fields: Record<string, string>) => ({
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams(fields).toString(),
});

describe('approval gates', () => {
  it('pauses before Staging and Production; links confirm, scanners change nothing; then Succeeded', async () => {
    const id = await deploy('Production');
    const waiting = await waitForDeployment(cloud, id, ['WaitingForApproval']);
    const staging = waiting.stages.find((s: { name: string }) => s.name === 'Staging');
    expect(staging.status).toBe('Pending');
    expect(staging.approval).toMatchObject({
      status: 'Pending',
      approvers: ['dev-approver', 'dev-approver-2'],
      quorum: 1,
      requestedAt: expect.any(String),
      deadline: expect.any(String),
    });
    expect(agentVersions(cloud, 'qa')).toEqual({ 'qa-01': '1.1.0', 'qa-02': '1.1.0', 'qa-03': '1.1.0', 'qa-04': '1.1.0', 'qa-05': '1.1.0' });

    const { approve, email } = await approvalEmail(id, 'Staging');
    expect(email.subject).toBe('Approval needed: demo-kernel@1.1.0 to Staging');
    expect(email.body).toContain('Requested by:  dev-deployer');
    expect(email.body).toMatch(/QA\s+1\.1\.0 on 5 of 5 nodes/);
    expect(email.body).not.toMatch(/taskToken|AAAA/);
    const pending = await api(cloud, 'GET', '/api/v1/approvals/pending', { token: cloud.tokens.Viewer });
    expect(pending.body.items.map((a: { executionId: string }) => a.executionId)).toContain(id);
    expect(JSON.stringify(pending.body)).not.toContain('taskToken');

    // A mail scanner follows the link (twice): a confirmation page, nothing decided.
    for (let i = 0; i < 2; i++) {
      const page = await fetch(approve);
      expect(page.status).toBe(200);
      const html = await page.text();
      expect(html).toContain('Approve demo-kernel 1.1.0 for Staging?');
      expect(html).toContain('<form method="post">');
      const csp = page.headers.get('content-security-policy')!;
      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("form-action 'self'");
      expect(csp).not.toContain('sandbox');
      expect(page.headers.get('x-frame-options')).toBe('DENY');
    }
    expect((await waitForDeployment(cloud, id, ['WaitingForApproval'])).status).toBe('WaitingForApproval');

    const confirmed = await fetch(approve, form({ confirm: 'approve', reason: 'change window open' }));
    expect(confirmed.status).toBe(200);
    expect(await confirmed.text()).toContain('The approval is approved');

    // The used link now only says so.
    const reused = await fetch(approve, form({ confirm: 'approve' }));
    expect(reused.status).toBe(409);
    expect(await reused.text()).toContain('Nothing was changed');

    // Production needs two approvers.
    await waitForDeployment(cloud, id, ['WaitingForApproval', 'Succeeded', 'Failed', 'RolledBack'], 60_000);
    const prodWait = await waitForDeployment(cloud, id, ['WaitingForApproval']);
    expect(prodWait.stages.find((s: { name: string }) => s.name === 'Production').approval).toMatchObject({ status: 'Pending', quorum: 2 });
    const first = await approvalEmail(id, 'Production');
    expect((await fetch(first.approve, form({ confirm: 'approve' }))).status).toBe(200);
    expect((await waitForDeployment(cloud, id, ['WaitingForApproval'])).status).toBe('WaitingForApproval');
    const again = await api(cloud, 'POST', `/api/v1/approvals/deployments/${id}/approve`, { token: cloud.tokens.Approver, body: {} });
    expect(again.status).toBe(409);
    expect(again.body.code).toBe('AlreadyDecided');
    const second = await api(cloud, 'POST', `/api/v1/approvals/deployments/${id}/approve`, {
      token: secondApproverToken,
      body: { reason: 'second pair of eyes' },
    });
    expect(second.status).toBe(200);
    expect(second.body).toMatchObject({
      status: 'Approved',
      decisions: [
        { approver: 'dev-approver', via: 'email' },
        { approver: 'dev-approver-2', via: 'api' },
      ],
    });
    expect(second.body.taskToken).toBeUndefined();

    const done = await waitForDeployment(cloud, id);
    expect(done.status).toBe('Succeeded');
    const decided = await api(cloud, 'POST', `/api/v1/approvals/deployments/${id}/reject`, { token: secondApproverToken, body: { reason: 'too late' } });
    expect(decided.status).toBe(409);

    const actions = (await auditActions(id)).filter((a) => a.action.startsWith('approval.')).map((a) => `${a.action}:${a.details.environment}:${a.actor}`);
    expect(actions).toEqual([
      'approval.requested:Staging:system:pipeline',
      'approval.notified:Staging:system:pipeline',
      'approval.approved:Staging:dev-approver',
      'approval.requested:Production:system:pipeline',
      'approval.notified:Production:system:pipeline',
      'approval.approved-partially:Production:dev-approver',
      'approval.approved:Production:dev-approver-2',
    ]);
    // The requester hears of every outcome (the last one is sent just after the status is set).
    expect(await mailFor('dan.deployer@example.com', id, 3)).toEqual(
      expect.arrayContaining([
        'demo-kernel@1.1.0 approved for Staging',
        'demo-kernel@1.1.0 approved for Production',
        'demo-kernel@1.1.0 to Production: Succeeded',
      ]),
    );
  });

  it('a rejection ends the deployment Failed with the reason; no Staging or Production node changed', async () => {
    // Put every environment back on 1.0.0 first (the previous test promoted 1.1.0 everywhere).
    const list = await api(cloud, 'GET', '/api/v1/deployments?status=Succeeded', { token: cloud.tokens.Viewer });
    const rb = await api(cloud, 'POST', `/api/v1/deployments/${list.body.items[0].executionId}/rollback`, { token: cloud.tokens.Deployer, body: {} });
    expect(rb.status).toBe(202);
    await waitForDeployment(cloud, list.body.items[0].executionId, ['RolledBack']);

    const id = await deploy('Production');
    await waitForDeployment(cloud, id, ['WaitingForApproval']);
    const { reject } = await approvalEmail(id, 'Staging');
    const page = await fetch(reject);
    expect(await page.text()).toContain('Reject demo-kernel 1.1.0 for Staging?');
    const posted = await fetch(reject, form({ confirm: 'reject', reason: 'freeze until Monday' }));
    expect(posted.status).toBe(200);
    const d = await waitForDeployment(cloud, id);
    expect(d.status).toBe('Failed');
    expect(d.failure).toMatchObject({ stage: 'Staging', code: 'ApprovalRejected', message: expect.stringContaining('freeze until Monday') });
    expect(d.stages.find((s: { name: string }) => s.name === 'Production').status).toBe('Pending');
    expect(Object.values(agentVersions(cloud, 'stg')).every((v) => v === '1.0.0')).toBe(true);
    expect(Object.values(agentVersions(cloud, 'prod')).every((v) => v === '1.0.0')).toBe(true);
    const actions = (await auditActions(id)).map((a) => a.action);
    expect(actions).toContain('approval.rejected');
  });

  it('self-approval is 403, a Viewer is 403, a forged or tampered link changes nothing', async () => {
    const id = await deploy('Staging', cloud.tokens.Admin);
    await waitForDeployment(cloud, id, ['WaitingForApproval']);
    const self = await api(cloud, 'POST', `/api/v1/approvals/deployments/${id}/approve`, { token: cloud.tokens.Admin, body: {} });
    expect(self.status).toBe(403);
    expect(self.body.code).toBe('SelfApprovalForbidden');
    expect((await api(cloud, 'POST', `/api/v1/approvals/deployments/${id}/approve`, { token: cloud.tokens.Viewer, body: {} })).status).toBe(403);

    const { approve } = await approvalEmail(id, 'Staging');
    const [body, mac] = approve.split('/').at(-1)!.split('.');
    const claims = JSON.parse(Buffer.from(body, 'base64url').toString());
    const forgedBody = Buffer.from(JSON.stringify({ ...claims, approver: 'dev-admin' })).toString('base64url');
    const base = approve.slice(0, approve.lastIndexOf('/') + 1);
    for (const bad of [`${base}${forgedBody}.${mac}`, `${base}${body}.${mac.slice(0, -2)}xx`, `${base}garbage`]) {
      const r = await fetch(bad, form({ confirm: 'approve' }));
      expect(r.status).toBe(400);
      expect(await r.text()).toContain('Nothing was changed');
    }
    expect((await waitForDeployment(cloud, id, ['WaitingForApproval'])).status).toBe('WaitingForApproval');
    const ok = await api(cloud, 'POST', `/api/v1/approvals/deployments/${id}/reject`, { token: cloud.tokens.Approver, body: { reason: 'not today' } });
    expectDocumented('POST /api/v1/approvals/deployments/{executionId}/reject', ok);
    expect((await waitForDeployment(cloud, id)).status).toBe('Failed');
  });

  it('a shrunken timeout rejects on its own, through the state machine; late decisions and links change nothing', async () => {
    // Settings are read when a deployment is requested: this one gets a 2 s Staging approval window.
    process.env.APPROVAL_TIMEOUT_SECONDS_STAGING = '2';
    let id: string;
    try {
      id = await deploy('Staging');
    } finally {
      delete process.env.APPROVAL_TIMEOUT_SECONDS_STAGING;
    }
    const waiting = await waitForDeployment(cloud, id, ['WaitingForApproval']);
    const approval = waiting.stages.find((s: { name: string }) => s.name === 'Staging').approval;
    expect(Date.parse(approval.deadline) - Date.parse(approval.requestedAt)).toBe(2000);
    const { approve } = await approvalEmail(id, 'Staging');
    const d = await waitForDeployment(cloud, id);
    expect(d.status).toBe('Failed');
    expect(d.failure).toMatchObject({ stage: 'Staging', code: 'ApprovalExpired' });
    expect(Object.values(agentVersions(cloud, 'stg')).every((v) => v === '1.0.0')).toBe(true);
    const late = await api(cloud, 'POST', `/api/v1/approvals/deployments/${id}/approve`, { token: cloud.tokens.Approver, body: {} });
    expect(late.status).toBe(410);
    expect(late.body.code).toBe('ApprovalExpired');
    const page = await fetch(approve);
    expect(page.status).toBe(410);
    expect(await page.text()).toContain('This approval expired');
    const actions = (await auditActions(id)).map((a) => a.action);
    expect(actions).toEqual(expect.arrayContaining(['approval.requested', 'approval.notified', 'approval.expired']));
    const approvals = await api(cloud, 'GET', `/api/v1/approvals/deployments/${id}`, { token: cloud.tokens.Viewer });
    expect(approvals.body.items).toEqual([expect.objectContaining({ environment: 'Staging', status: 'Expired' })]);
    expect(await mailFor('dan.deployer@example.com', id, 2)).toEqual(
      expect.arrayContaining(['demo-kernel@1.1.0 approval for Staging expired', 'demo-kernel@1.1.0 to Staging: Failed']),
    );
  });

  it("a link decides only while its approver may: disabled, off the environment's list or without the role, it is a 403 JSON, nothing recorded, audited", async () => {
    const id = await deploy('Staging');
    await waitForDeployment(cloud, id, ['WaitingForApproval']);
    const { approve } = await approvalEmail(id, 'Staging');
    const admin = cloud.tokens.Admin;

    const refused = async (code: string) => {
      const before = await snapshotTables(cloud);
      for (const [method, init] of [
        ['GET', undefined],
        ['POST', form({ confirm: 'approve', reason: 'still me' })],
      ] as const) {
        const r = await fetch(approve, init);
        expect(r.status, `${code} ${method}`).toBe(403);
        expect(r.headers.get('content-type'), method).toMatch(/^application\/json/);
        expect(await r.json(), method).toEqual({ code, message: expect.stringMatching(/Nothing was changed/) });
      }
      expect(await snapshotTables(cloud)).toEqual(before);
      expect(
        (await waitForDeployment(cloud, id, ['WaitingForApproval'])).stages.find((s: { name: string }) => s.name === 'Staging').approval.decisions,
      ).toEqual([]);
    };

    // 1. The approver is disabled (the adversarial run's case: the link still decided).
    expect((await api(cloud, 'POST', '/api/v1/admin/users/dev-approver/disable', { token: admin })).status).toBe(200);
    await refused('ApproverDisabled');
    expect((await api(cloud, 'POST', '/api/v1/admin/users/dev-approver/enable', { token: admin })).status).toBe(200);

    // 2. The approver no longer holds the Approver (or Admin) role.
    expect((await api(cloud, 'PUT', '/api/v1/admin/users/dev-approver/roles', { token: admin, body: { roles: ['Viewer'] } })).status).toBe(200);
    await refused('ApproverRoleRevoked');
    expect((await api(cloud, 'PUT', '/api/v1/admin/users/dev-approver/roles', { token: admin, body: { roles: ['Approver'] } })).status).toBe(200);

    // 3. The approver was taken off the environment's approver list; the API says the same.
    const lists = process.env.APPROVERS;
    process.env.APPROVERS = JSON.stringify({ Staging: ['dev-approver-2'], Production: ['dev-approver-2'] });
    try {
      await refused('NotAnApprover');
      const viaApi = await api(cloud, 'POST', `/api/v1/approvals/deployments/${id}/approve`, { token: cloud.tokens.Approver, body: {} });
      expect(viaApi).toMatchObject({ status: 403, body: { code: 'NotAnApprover' } });
    } finally {
      process.env.APPROVERS = lists;
    }

    // Each refusal is a security event on the deployment's trail, naming the approver and why.
    const refusals = (await auditActions(id)).filter((a) => a.action === 'approval.link-refused');
    expect(refusals.map((a) => `${a.actor}:${a.details.code}:${a.details.method}`)).toEqual([
      'dev-approver:ApproverDisabled:GET',
      'dev-approver:ApproverDisabled:POST',
      'dev-approver:ApproverRoleRevoked:GET',
      'dev-approver:ApproverRoleRevoked:POST',
      'dev-approver:NotAnApprover:GET',
      'dev-approver:NotAnApprover:POST',
    ]);

    // In good standing again, the same link (never used) decides.
    const decided = await fetch(approve, form({ confirm: 'approve' }));
    expect(decided.status).toBe(200);
    expect((await waitForDeployment(cloud, id)).status).toBe('Succeeded');
  });
});
