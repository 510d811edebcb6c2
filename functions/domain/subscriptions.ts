/**
 * Who should get which email, and what to change in SNS to get there (no AWS imports).
 *
 * Approval requests go to the approver topic with a message attribute `approver = <user id>`;
 * outcomes go to the notification topic with `userId = <user id>` (lib/notify.ts). Each person is
 * an email subscription on a topic whose filter policy names their own id, so each gets only their
 * own mail and their personal links. The wanted set follows from the approver lists and the user
 * directory; the plan turns the difference from what SNS holds into subscribe, re-filter and
 * unsubscribe steps. Subscriptions of another shape (no filter, several ids, another protocol) are
 * someone else's and are never touched.
 */
import type { Role } from './roles.ts';

export const SUBSCRIPTION_TOPICS = ['approvals', 'notifications'] as const;
export type SubscriptionTopic = (typeof SUBSCRIPTION_TOPICS)[number];

/** The message attribute each topic's subscriptions filter on (the publishers in lib/notify.ts set it). */
export const FILTER_ATTRIBUTE: Record<SubscriptionTopic, string> = { approvals: 'approver', notifications: 'userId' };

/** The filter policy of a person's subscription on a topic. */
export const filterPolicyFor = (topic: SubscriptionTopic, userId: string): Record<string, string[]> => ({ [FILTER_ATTRIBUTE[topic]]: [userId] });

/** A person who may receive email: from the directory, or only from the identity provider (roles unknown). */
export interface Subscriber {
  userId: string;
  email?: string;
  enabled: boolean;
  /** The directory's roles; undefined when only the identity provider knows the user. */
  roles?: readonly Role[];
}

export interface WantedSubscription {
  topic: SubscriptionTopic;
  userId: string;
  email: string;
}

/** An approver who gets no approval mail, and why. */
export interface Unsubscribable {
  userId: string;
  reason: string;
}

/** An email subscription as SNS lists it. Pending ones have no ARN and no readable attributes yet. */
export interface ExistingSubscription {
  topic: SubscriptionTopic;
  email: string;
  arn?: string;
  pending: boolean;
  filterPolicy?: unknown;
}

export type SubscriptionStep =
  | { kind: 'subscribe'; topic: SubscriptionTopic; userId: string; email: string }
  | { kind: 'refilter'; topic: SubscriptionTopic; userId: string; email: string; arn: string; previousUserId?: string }
  | { kind: 'unsubscribe'; topic: SubscriptionTopic; userId: string; email: string; arn: string };

/** `missing` only in a dry run: the subscription a real run would make. */
export type SubscriptionState = 'confirmed' | 'pending-confirmation' | 'conflict' | 'missing';

export interface SubscriptionStatus {
  topic: SubscriptionTopic;
  userId: string;
  email: string;
  state: SubscriptionState;
  detail?: string;
}

export interface SubscriptionPlan {
  steps: SubscriptionStep[];
  /** Wanted subscriptions that already exist (or cannot be made: conflict), by state. */
  statuses: SubscriptionStatus[];
}

const sameAddress = (a: string, b: string) => a.trim().toLowerCase() === b.trim().toLowerCase();
const DECIDES: readonly Role[] = ['Approver', 'Admin'];

/**
 * The subscriptions that should exist: every enabled user with an email gets the outcomes that
 * concern them; every enabled approver (listed for any environment, with the Approver or Admin role
 * when the directory knows their roles) gets their approval requests. Approvers who get none are
 * returned with the reason, so an operator sees a misspelt id or a missing email at once.
 */
export function wantedSubscriptions(
  approvers: Record<string, readonly string[]>,
  subscribers: readonly Subscriber[],
): { wanted: WantedSubscription[]; unsubscribable: Unsubscribable[] } {
  const byId = new Map(subscribers.map((s) => [s.userId, s]));
  const wanted: WantedSubscription[] = [];
  for (const s of subscribers) if (s.enabled && s.email) wanted.push({ topic: 'notifications', userId: s.userId, email: s.email });
  const unsubscribable: Unsubscribable[] = [];
  for (const userId of [...new Set(Object.values(approvers).flat())].sort()) {
    const s = byId.get(userId);
    const reason = !s
      ? 'no user with this id in the directory or the identity provider'
      : !s.email
        ? 'no email address known for this user'
        : !s.enabled
          ? 'the user is disabled'
          : s.roles && !s.roles.some((r) => DECIDES.includes(r))
            ? 'the user has neither the Approver nor the Admin role, so could not decide'
            : undefined;
    if (reason) unsubscribable.push({ userId, reason });
    else if (s?.email) wanted.push({ topic: 'approvals', userId, email: s.email });
  }
  return { wanted, unsubscribable };
}

/** The user id a subscription belongs to, when its filter policy is exactly `{"<attribute>":["<id>"]}`. */
export function ownerOf(sub: Pick<ExistingSubscription, 'topic' | 'filterPolicy'>): string | undefined {
  const policy = sub.filterPolicy;
  if (!policy || typeof policy !== 'object' || Array.isArray(policy)) return undefined;
  const entries = Object.entries(policy);
  if (entries.length !== 1) return undefined;
  const [attribute, values] = entries[0];
  if (attribute !== FILTER_ATTRIBUTE[sub.topic] || !Array.isArray(values) || values.length !== 1 || typeof values[0] !== 'string') return undefined;
  return values[0];
}

/**
 * The steps from what exists to what is wanted. With a scope, only that person is considered (their
 * user id, or an address of theirs): an Admin's change to one user touches only their subscriptions.
 *
 * - wanted, absent: subscribe (SNS mails a confirmation link; until it is followed it is pending);
 * - wanted, pending for that address: nothing to do but wait for the confirmation;
 * - wanted, confirmed with another person's filter on that address and that person no longer wanted
 *   there: re-filter it rather than mail a new confirmation;
 * - wanted, but the address holds a subscription of another shape: a conflict, reported, untouched
 *   (SNS refuses a second subscription of one address with different attributes);
 * - confirmed, ours, not wanted: unsubscribe. Pending ones cannot be removed (SNS lists them without
 *   an ARN); unconfirmed, they lapse, and confirmed later they are removed by the next run.
 */
export function planSubscriptions(
  wanted: readonly WantedSubscription[],
  existing: readonly ExistingSubscription[],
  scope?: { userId: string; emails: readonly string[] },
): SubscriptionPlan {
  const inScope = (userId: string | undefined, email: string) => !scope || userId === scope.userId || scope.emails.some((e) => sameAddress(e, email));
  const want = wanted.filter((w) => inScope(w.userId, w.email));
  const have = existing.filter((e) => inScope(e.pending ? undefined : ownerOf(e), e.email));
  const steps: SubscriptionStep[] = [];
  const statuses: SubscriptionStatus[] = [];
  const used = new Set<ExistingSubscription>();
  const isWanted = (topic: SubscriptionTopic, userId: string | undefined, email: string) =>
    userId !== undefined && wanted.some((w) => w.topic === topic && w.userId === userId && sameAddress(w.email, email));

  for (const w of want) {
    const sameAddr = have.filter((e) => e.topic === w.topic && sameAddress(e.email, w.email) && !used.has(e));
    const exact = sameAddr.find((e) => !e.pending && ownerOf(e) === w.userId);
    const pending = sameAddr.find((e) => e.pending);
    const reusable = sameAddr.find((e) => !e.pending && ownerOf(e) !== undefined && !isWanted(e.topic, ownerOf(e), e.email));
    const foreign = sameAddr.find((e) => !e.pending && ownerOf(e) === undefined);
    const status = (state: SubscriptionState, detail?: string) => statuses.push({ topic: w.topic, userId: w.userId, email: w.email, state, detail });
    if (exact) {
      used.add(exact);
      status('confirmed');
    } else if (pending) {
      used.add(pending);
      status('pending-confirmation', 'waiting for the confirmation link SNS mailed to this address');
    } else if (reusable?.arn) {
      used.add(reusable);
      steps.push({ kind: 'refilter', topic: w.topic, userId: w.userId, email: w.email, arn: reusable.arn, previousUserId: ownerOf(reusable) });
    } else if (foreign) {
      used.add(foreign);
      status('conflict', 'this address already has a subscription on the topic that is not filtered on one user id; remove it or give it this filter policy');
    } else {
      steps.push({ kind: 'subscribe', topic: w.topic, userId: w.userId, email: w.email });
    }
  }
  for (const e of have) {
    const owner = ownerOf(e);
    if (used.has(e) || e.pending || !e.arn || owner === undefined || isWanted(e.topic, owner, e.email)) continue;
    steps.push({ kind: 'unsubscribe', topic: e.topic, userId: owner, email: e.email, arn: e.arn });
  }
  return { steps, statuses };
}
