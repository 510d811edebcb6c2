/**
 * Approver and requester email subscriptions, kept in step with the approver lists and the user
 * directory (domain/subscriptions.ts decides; this file reads and changes SNS and audits each
 * change). Runs on every deploy (a custom resource), at local-cloud start, and after an Admin
 * creates, re-roles, disables or enables a user. Every run compares with what SNS holds, so a run
 * that failed half-way is finished by the next one.
 */
import { CognitoIdentityProviderClient, ListUsersCommand } from '@aws-sdk/client-cognito-identity-provider';
import {
  GetSubscriptionAttributesCommand,
  paginateListSubscriptionsByTopic,
  SetSubscriptionAttributesCommand,
  SubscribeCommand,
  UnsubscribeCommand,
} from '@aws-sdk/client-sns';
import {
  type ExistingSubscription,
  filterPolicyFor,
  planSubscriptions,
  SUBSCRIPTION_TOPICS,
  type Subscriber,
  type SubscriptionStatus,
  type SubscriptionStep,
  type SubscriptionTopic,
  type Unsubscribable,
  wantedSubscriptions,
} from '../domain/subscriptions.ts';
import { audit } from './audit.ts';
import { notifications } from './aws.ts';
import { config } from './config.ts';
import { listEntries } from './directory.ts';

export interface SubscriptionReport {
  /** What this run changed in SNS. */
  changes: (SubscriptionStep & { subscriptionArn?: string })[];
  /** Every wanted subscription (in scope) and its state after the run. */
  subscriptions: SubscriptionStatus[];
  /** Approvers who get no approval mail, and why. */
  unsubscribable: Unsubscribable[];
}

const topicArn = (topic: SubscriptionTopic) => (topic === 'approvals' ? config.approverTopicArn() : config.notificationTopicArn());

/** Approver user ids per environment, as the approval gate reads them (APPROVERS). */
export function approverLists(): Record<string, string[]> {
  return JSON.parse(process.env.APPROVERS ?? '{}') as Record<string, string[]>;
}

let cognito: CognitoIdentityProviderClient | undefined;

/**
 * Everyone who may get mail: the directory's users, and approvers only the identity provider knows
 * (on AWS, people created in the Cognito console or CLI, such as the first Admin), found by `sub`.
 */
async function subscribers(approvers: Record<string, string[]>): Promise<Subscriber[]> {
  const known: Subscriber[] = (await listEntries())
    .filter((e) => e.kind === 'user')
    .map((e) => ({ userId: e.userId, email: e.email, enabled: e.enabled, roles: e.roles }));
  const pool = process.env.COGNITO_USER_POOL_ID;
  if (!pool) return known;
  const missing = [...new Set(Object.values(approvers).flat())].filter((id) => !known.some((k) => k.userId === id));
  cognito ??= new CognitoIdentityProviderClient({});
  for (const userId of missing) {
    // A `sub` is a UUID; anything else cannot match and must not reach the filter expression.
    if (!/^[0-9a-f-]{36}$/i.test(userId)) continue;
    const r = await cognito.send(new ListUsersCommand({ UserPoolId: pool, Filter: `sub = "${userId}"`, Limit: 1 }));
    const user = r.Users?.[0];
    if (!user) continue;
    const email = user.Attributes?.find((a) => a.Name === 'email')?.Value;
    known.push({ userId, email, enabled: user.Enabled !== false });
  }
  return known;
}

/** The email subscriptions of a topic, with the filter policy of each confirmed one. */
async function existingSubscriptions(topic: SubscriptionTopic): Promise<ExistingSubscription[]> {
  const out: ExistingSubscription[] = [];
  for await (const page of paginateListSubscriptionsByTopic({ client: notifications() }, { TopicArn: topicArn(topic) })) {
    for (const s of page.Subscriptions ?? []) {
      if (s.Protocol !== 'email' || !s.Endpoint) continue;
      // SNS lists a subscription that waits for its confirmation link as "PendingConfirmation", without an ARN.
      const pending = !s.SubscriptionArn?.startsWith('arn:');
      let filterPolicy: unknown;
      if (!pending) {
        const attrs = await notifications().send(new GetSubscriptionAttributesCommand({ SubscriptionArn: s.SubscriptionArn }));
        filterPolicy = attrs.Attributes?.FilterPolicy ? JSON.parse(attrs.Attributes.FilterPolicy) : undefined;
      }
      out.push({ topic, email: s.Endpoint, arn: pending ? undefined : s.SubscriptionArn, pending, filterPolicy });
    }
  }
  return out;
}

async function apply(step: SubscriptionStep): Promise<string | undefined> {
  const policy = JSON.stringify(filterPolicyFor(step.topic, step.userId));
  switch (step.kind) {
    case 'subscribe': {
      const r = await notifications().send(
        new SubscribeCommand({
          TopicArn: topicArn(step.topic),
          Protocol: 'email',
          Endpoint: step.email,
          Attributes: { FilterPolicy: policy },
          ReturnSubscriptionArn: true,
        }),
      );
      return r.SubscriptionArn;
    }
    case 'refilter':
      await notifications().send(new SetSubscriptionAttributesCommand({ SubscriptionArn: step.arn, AttributeName: 'FilterPolicy', AttributeValue: policy }));
      return step.arn;
    case 'unsubscribe':
      await notifications().send(new UnsubscribeCommand({ SubscriptionArn: step.arn }));
      return step.arn;
  }
}

const AUDIT_ACTION: Record<SubscriptionStep['kind'], string> = {
  subscribe: 'subscription.requested',
  refilter: 'subscription.refiltered',
  unsubscribe: 'subscription.removed',
};

/**
 * Bring SNS in line with the approver lists and the directory (for everyone, or for one user), and
 * audit each change. `dryRun` plans without changing anything.
 */
export async function syncSubscriptions(opts: { actor: string; userId?: string; dryRun?: boolean }): Promise<SubscriptionReport> {
  const approvers = approverLists();
  const people = await subscribers(approvers);
  const { wanted, unsubscribable } = wantedSubscriptions(approvers, people);
  const existing = (await Promise.all(SUBSCRIPTION_TOPICS.map(existingSubscriptions))).flat();
  const person = opts.userId === undefined ? undefined : people.find((p) => p.userId === opts.userId);
  const scope = opts.userId === undefined ? undefined : { userId: opts.userId, emails: person?.email ? [person.email] : [] };
  const plan = planSubscriptions(wanted, existing, scope);
  const changes: SubscriptionReport['changes'] = [];
  const subscriptions = [...plan.statuses];
  for (const step of plan.steps) {
    const subscriptionArn = opts.dryRun ? undefined : await apply(step);
    changes.push({ ...step, subscriptionArn });
    if (!opts.dryRun)
      await audit({
        subject: `principal#${step.userId}`,
        category: 'security',
        action: AUDIT_ACTION[step.kind],
        actor: opts.actor,
        details: { topic: step.topic, email: step.email, subscriptionArn, ...(step.kind === 'refilter' ? { previousUserId: step.previousUserId } : {}) },
      });
    if (step.kind === 'unsubscribe') continue;
    const { topic, userId, email } = step;
    if (opts.dryRun) subscriptions.push({ topic, userId, email, state: 'missing', detail: step.kind === 'subscribe' ? 'would subscribe' : 'would re-filter' });
    else if (step.kind === 'refilter') subscriptions.push({ topic, userId, email, state: 'confirmed' });
    else subscriptions.push({ topic, userId, email, state: 'pending-confirmation', detail: 'SNS mailed a confirmation link to this address' });
  }
  const inScope = (u: Unsubscribable) => opts.userId === undefined || u.userId === opts.userId;
  return { changes, subscriptions, unsubscribable: unsubscribable.filter(inScope) };
}
