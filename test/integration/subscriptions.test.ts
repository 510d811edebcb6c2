/**
 * Approver and user email subscriptions follow the approver lists and the directory, against the
 * local cloud's SNS (the Query protocol the AWS SDK speaks): on deploy (the custom resource's
 * event, sent to the same handler), and when an Admin creates, re-roles, disables or enables a
 * user. What SNS holds is read back over the same protocol an operator's tools use.
 */
import { createServer, type Server } from 'node:http';
import { ListSubscriptionsByTopicCommand, GetSubscriptionAttributesCommand, PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { api, startTestCloud } from './harness.ts';

let cloud: LocalCloud;
let sns: SNSClient;
const APPROVERS = { Staging: ['dev-approver'], Production: ['dev-approver'] };

beforeAll(async () => {
  cloud = await startTestCloud({ env: { APPROVERS: JSON.stringify(APPROVERS) } });
  sns = new SNSClient({ endpoint: cloud.servicesUrl, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
});
afterAll(async () => {
  sns?.destroy();
  await cloud?.stop();
});

const topic = (kind: 'approvals' | 'notifications') => (kind === 'approvals' ? process.env.APPROVER_TOPIC_ARN! : process.env.NOTIFICATION_TOPIC_ARN!);

/** Each email subscription of a topic: address, pending or not, and the filter policy of confirmed ones. */
async function subscriptionsOf(kind: 'approvals' | 'notifications') {
  const listed = await sns.send(new ListSubscriptionsByTopicCommand({ TopicArn: topic(kind) }));
  const out: { email: string; pending: boolean; filter?: unknown }[] = [];
  for (const s of listed.Subscriptions ?? []) {
    const pending = !s.SubscriptionArn?.startsWith('arn:');
    const attrs = pending ? undefined : (await sns.send(new GetSubscriptionAttributesCommand({ SubscriptionArn: s.SubscriptionArn }))).Attributes;
    out.push({ email: s.Endpoint!, pending, filter: attrs?.FilterPolicy ? JSON.parse(attrs.FilterPolicy) : undefined });
  }
  return out.sort((a, b) => a.email.localeCompare(b.email));
}

const mailbox = async () =>
  ((await (await fetch(`${cloud.mailboxUrl}/messages.json`)).json()) as { messages: { to: string; subject: string; body: string }[] }).messages;

/** Follow the newest confirmation link mailed to an address for a topic, as its owner would. */
async function confirmFromMailbox(email: string, kind: 'approvals' | 'notifications') {
  const mail = (await mailbox()).find((m) => m.to === email && m.subject === 'AWS Notification - Subscription Confirmation' && m.body.includes(topic(kind)));
  expect(mail, `confirmation mail to ${email} for ${kind}`).toBeDefined();
  const link = /https?:\/\/\S+\/_sns\/confirm\?\S+/.exec(mail!.body)![0];
  expect((await fetch(link)).status).toBe(200);
}

/** What CloudFormation sends the custom resource on a stack update whose approver lists changed. */
const deployWith = (approvers: Record<string, string[]>) => {
  process.env.APPROVERS = JSON.stringify(approvers);
  return cloud.lambda.invoke('kmod-SyncSubscriptions', {
    RequestType: 'Update',
    PhysicalResourceId: 'kmod-email-subscriptions',
    ResourceProperties: { Approvers: process.env.APPROVERS },
    OldResourceProperties: {},
  }) as Promise<{ PhysicalResourceId: string; Data: Record<string, string> }>;
};

const auditOf = async (userId: string) =>
  (await api(cloud, 'GET', `/api/v1/audit?subject=${encodeURIComponent(`principal#${userId}`)}`, { token: cloud.tokens.Admin })).body.items.map(
    (i: { action: string; actor: string; details: { topic?: string } }) => `${i.action}${i.details.topic ? ` ${i.details.topic}` : ''} by ${i.actor}`,
  );

describe('email subscriptions follow the approver lists and the directory', () => {
  let erin: string;

  it('at start (as on a first deploy): the listed approver gets approval requests, every dev user their outcomes, all confirmed', async () => {
    expect(await subscriptionsOf('approvals')).toEqual([{ email: 'amy.approver@example.com', pending: false, filter: { approver: ['dev-approver'] } }]);
    expect((await subscriptionsOf('notifications')).map((s) => [s.email, s.pending, s.filter])).toEqual([
      ['ada.admin@example.com', false, { userId: ['dev-admin'] }],
      ['amy.approver@example.com', false, { userId: ['dev-approver'] }],
      ['dan.deployer@example.com', false, { userId: ['dev-deployer'] }],
      ['vic.viewer@example.com', false, { userId: ['dev-viewer'] }],
    ]);
    const status = await api(cloud, 'GET', '/api/v1/admin/subscriptions', { token: cloud.tokens.Admin });
    expect(status.status).toBe(200);
    expect(status.body.changes).toEqual([]);
    expect(status.body.unsubscribable).toEqual([]);
    expect(status.body.subscriptions).toHaveLength(5);
    expect(status.body.subscriptions.every((s: { state: string }) => s.state === 'confirmed')).toBe(true);
  });

  it('a user an Admin creates is subscribed to their outcomes, pending until they follow the link SNS mails them', async () => {
    const created = await api(cloud, 'POST', '/api/v1/admin/users', {
      token: cloud.tokens.Admin,
      body: { username: 'erin.ops', email: 'erin@example.com', roles: ['Deployer'] },
    });
    expect(created.status).toBe(201);
    erin = created.body.userId;
    expect(created.body.subscriptions).toMatchObject({
      changes: [{ kind: 'subscribe', topic: 'notifications', userId: erin, email: 'erin@example.com' }],
      subscriptions: [{ topic: 'notifications', userId: erin, state: 'pending-confirmation' }],
      unsubscribable: [],
    });
    expect((await subscriptionsOf('notifications')).find((s) => s.email === 'erin@example.com')).toEqual({ email: 'erin@example.com', pending: true });

    await confirmFromMailbox('erin@example.com', 'notifications');
    expect((await subscriptionsOf('notifications')).find((s) => s.email === 'erin@example.com')).toEqual({
      email: 'erin@example.com',
      pending: false,
      filter: { userId: [erin] },
    });
    // The filter policy is hers alone: an outcome for her reaches her, one for someone else does not.
    const before = (await mailbox()).length;
    for (const userId of [erin, 'dev-viewer'])
      await sns.send(
        new PublishCommand({
          TopicArn: topic('notifications'),
          Subject: `outcome for ${userId}`,
          Message: 'done',
          MessageAttributes: { userId: { DataType: 'String', StringValue: userId } },
        }),
      );
    const fresh = (await mailbox()).slice(0, (await mailbox()).length - before);
    expect(fresh.map((m) => `${m.to}: ${m.subject}`).sort()).toEqual([
      `erin@example.com: outcome for ${erin}`,
      'vic.viewer@example.com: outcome for dev-viewer',
    ]);
  });

  it('a deploy with new approver lists subscribes the new approvers who can decide, unsubscribes the dropped one, and says who is left out', async () => {
    const out = await deployWith({ Staging: [erin], Production: [erin, 'ghost-approver'] });
    expect(out.PhysicalResourceId).toBe('kmod-email-subscriptions');
    // erin has no Approver role yet: she could not decide, so she gets no requests.
    expect(out.Data).toEqual({ Subscribed: '0', Refiltered: '0', Removed: '1', PendingConfirmation: '0', Unsubscribable: `ghost-approver,${erin}` });
    expect(await subscriptionsOf('approvals')).toEqual([]);

    const status = await api(cloud, 'GET', '/api/v1/admin/subscriptions', { token: cloud.tokens.Admin });
    expect(status.body.unsubscribable).toEqual(
      [
        { userId: erin, reason: 'the user has neither the Approver nor the Admin role, so could not decide' },
        { userId: 'ghost-approver', reason: 'no user with this id in the directory or the identity provider' },
      ].sort((a, b) => a.userId.localeCompare(b.userId)),
    );
    expect(await auditOf('dev-approver')).toContain('subscription.removed approvals by system:deploy');
  });

  it('an Admin giving her the Approver role subscribes her to her approval requests; once confirmed only hers reach her', async () => {
    const changed = await api(cloud, 'PUT', `/api/v1/admin/users/${erin}/roles`, { token: cloud.tokens.Admin, body: { roles: ['Deployer', 'Approver'] } });
    expect(changed.status).toBe(200);
    expect(changed.body.subscriptions.changes).toEqual([
      expect.objectContaining({
        kind: 'subscribe',
        topic: 'approvals',
        userId: erin,
        email: 'erin@example.com',
        subscriptionArn: expect.stringMatching(/^arn:aws:sns:/),
      }),
    ]);
    await confirmFromMailbox('erin@example.com', 'approvals');
    expect(await subscriptionsOf('approvals')).toEqual([{ email: 'erin@example.com', pending: false, filter: { approver: [erin] } }]);

    const before = (await mailbox()).length;
    for (const approver of [erin, 'dev-approver'])
      await sns.send(
        new PublishCommand({
          TopicArn: topic('approvals'),
          Subject: `approve? (${approver})`,
          Message: 'links',
          MessageAttributes: { approver: { DataType: 'String', StringValue: approver }, environment: { DataType: 'String', StringValue: 'Production' } },
        }),
      );
    const fresh = (await mailbox()).slice(0, (await mailbox()).length - before);
    expect(fresh.map((m) => `${m.to}: ${m.subject}`)).toEqual([`erin@example.com: approve? (${erin})`]);
  });

  it('disabling a user removes her subscriptions at once; enabling her subscribes her again (new confirmations)', async () => {
    const disabled = await api(cloud, 'POST', `/api/v1/admin/users/${erin}/disable`, { token: cloud.tokens.Admin });
    expect(disabled.status).toBe(200);
    expect(disabled.body.subscriptions.changes.map((c: { kind: string; topic: string }) => `${c.kind} ${c.topic}`).sort()).toEqual([
      'unsubscribe approvals',
      'unsubscribe notifications',
    ]);
    expect((await subscriptionsOf('approvals')).length + (await subscriptionsOf('notifications')).filter((s) => s.email === 'erin@example.com').length).toBe(0);

    const enabled = await api(cloud, 'POST', `/api/v1/admin/users/${erin}/enable`, { token: cloud.tokens.Admin });
    expect(enabled.body.subscriptions.subscriptions.map((s: { topic: string; state: string }) => `${s.topic} ${s.state}`).sort()).toEqual([
      'approvals pending-confirmation',
      'notifications pending-confirmation',
    ]);
    expect(await auditOf(erin)).toEqual([
      'user.created by dev-admin',
      'subscription.requested notifications by dev-admin',
      'user.roles-changed by dev-admin',
      'subscription.requested approvals by dev-admin',
      'principal.disabled by dev-admin',
      'subscription.removed approvals by dev-admin',
      'subscription.removed notifications by dev-admin',
      'principal.enabled by dev-admin',
      'subscription.requested notifications by dev-admin',
      'subscription.requested approvals by dev-admin',
    ]);
  });

  it('a second sync changes nothing (every run compares with what SNS holds)', async () => {
    const again = await api(cloud, 'POST', '/api/v1/admin/subscriptions/sync', { token: cloud.tokens.Admin });
    expect(again.status).toBe(200);
    expect(again.body.changes).toEqual([]);
  });

  it('is for Admins only', async () => {
    expect((await api(cloud, 'GET', '/api/v1/admin/subscriptions', { token: cloud.tokens.Approver })).status).toBe(403);
    expect((await api(cloud, 'POST', '/api/v1/admin/subscriptions/sync', { token: cloud.tokens.Deployer })).status).toBe(403);
    expect((await api(cloud, 'POST', '/api/v1/admin/subscriptions/sync', {})).status).toBe(401);
  });

  it("on AWS, finds an approver only the user pool knows (the first Admin) by sub with Cognito's ListUsers", async () => {
    // A stand-in for the Cognito endpoint (its JSON protocol), so the exact request can be checked.
    const sub = '3f6c2a9e-1b7d-4c55-9a0e-5d2f8b7c6a10';
    const requests: { target: string; body: Record<string, unknown> }[] = [];
    const idp: Server = createServer(async (req, res) => {
      let body = '';
      for await (const c of req) body += c;
      requests.push({ target: String(req.headers['x-amz-target']), body: JSON.parse(body) });
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(
        JSON.stringify({
          Users: [
            {
              Username: 'root-admin',
              Enabled: true,
              UserStatus: 'CONFIRMED',
              Attributes: [
                { Name: 'sub', Value: sub },
                { Name: 'email', Value: 'root@example.com' },
              ],
            },
          ],
        }),
      );
    });
    await new Promise<void>((r) => idp.listen(0, '127.0.0.1', r));
    const saved = { pool: process.env.COGNITO_USER_POOL_ID, endpoint: process.env.AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER };
    process.env.COGNITO_USER_POOL_ID = 'us-east-1_TestPool';
    process.env.AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER = `http://127.0.0.1:${(idp.address() as { port: number }).port}`;
    try {
      const out = await deployWith({ Production: [sub, 'not-a-sub'] });
      expect(requests).toEqual([
        { target: 'AWSCognitoIdentityProviderService.ListUsers', body: { UserPoolId: 'us-east-1_TestPool', Filter: `sub = "${sub}"`, Limit: 1 } },
      ]);
      // Approval requests and, like every known user, the outcomes that concern them.
      expect(out.Data).toMatchObject({ Subscribed: '2', Unsubscribable: 'not-a-sub' });
      expect(await subscriptionsOf('approvals')).toContainEqual({ email: 'root@example.com', pending: true });
      expect(await subscriptionsOf('notifications')).toContainEqual({ email: 'root@example.com', pending: true });
    } finally {
      process.env.COGNITO_USER_POOL_ID = saved.pool ?? '';
      if (saved.pool === undefined) delete process.env.COGNITO_USER_POOL_ID;
      if (saved.endpoint === undefined) delete process.env.AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER;
      idp.close();
    }
  });
});
