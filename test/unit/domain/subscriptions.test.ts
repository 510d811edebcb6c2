import { describe, expect, it } from 'vitest';
import {
  type ExistingSubscription,
  filterPolicyFor,
  ownerOf,
  planSubscriptions,
  type Subscriber,
  wantedSubscriptions,
} from '../../../functions/domain/subscriptions.ts';

const amy: Subscriber = { userId: 'u-amy', email: 'amy@example.com', enabled: true, roles: ['Approver'] };
const dan: Subscriber = { userId: 'u-dan', email: 'dan@example.com', enabled: true, roles: ['Deployer'] };
const ada: Subscriber = { userId: 'u-ada', email: 'ada@example.com', enabled: true, roles: ['Admin'] };

const confirmed = (
  topic: ExistingSubscription['topic'],
  email: string,
  userId: string,
  arn = `arn:aws:sns:us-east-1:1:t:${userId}-${topic}`,
): ExistingSubscription => ({
  topic,
  email,
  arn,
  pending: false,
  filterPolicy: filterPolicyFor(topic, userId),
});

describe('wanted subscriptions', () => {
  it('mails outcomes to every enabled user with an address, and approval requests to each listed approver once', () => {
    const { wanted, unsubscribable } = wantedSubscriptions({ Staging: ['u-amy'], Production: ['u-amy', 'u-ada'] }, [amy, dan, ada]);
    expect(wanted).toEqual([
      { topic: 'notifications', userId: 'u-amy', email: 'amy@example.com' },
      { topic: 'notifications', userId: 'u-dan', email: 'dan@example.com' },
      { topic: 'notifications', userId: 'u-ada', email: 'ada@example.com' },
      { topic: 'approvals', userId: 'u-ada', email: 'ada@example.com' },
      { topic: 'approvals', userId: 'u-amy', email: 'amy@example.com' },
    ]);
    expect(unsubscribable).toEqual([]);
  });

  it('says why a listed approver gets no approval mail: unknown, no address, disabled, or unable to decide', () => {
    const { wanted, unsubscribable } = wantedSubscriptions({ Staging: ['u-ghost', 'u-noaddr', 'u-off', 'u-dan'] }, [
      dan,
      { userId: 'u-noaddr', enabled: true },
      { userId: 'u-off', email: 'off@example.com', enabled: false, roles: ['Approver'] },
    ]);
    expect(wanted.filter((w) => w.topic === 'approvals')).toEqual([]);
    expect(unsubscribable).toEqual([
      { userId: 'u-dan', reason: 'the user has neither the Approver nor the Admin role, so could not decide' },
      { userId: 'u-ghost', reason: 'no user with this id in the directory or the identity provider' },
      { userId: 'u-noaddr', reason: 'no email address known for this user' },
      { userId: 'u-off', reason: 'the user is disabled' },
    ]);
    // A disabled user gets no outcomes either.
    expect(wanted.map((w) => w.userId)).toEqual(['u-dan']);
  });

  it('trusts the approver list for people only the identity provider knows (roles unknown)', () => {
    const cognitoOnly: Subscriber = { userId: 'u-first-admin', email: 'root@example.com', enabled: true };
    expect(wantedSubscriptions({ Production: ['u-first-admin'] }, [cognitoOnly]).wanted).toContainEqual({
      topic: 'approvals',
      userId: 'u-first-admin',
      email: 'root@example.com',
    });
  });
});

describe('who a subscription belongs to', () => {
  it('is the one id of a filter on the topic attribute, and nobody for any other shape', () => {
    expect(ownerOf({ topic: 'approvals', filterPolicy: { approver: ['u-amy'] } })).toBe('u-amy');
    expect(ownerOf({ topic: 'notifications', filterPolicy: { userId: ['u-amy'] } })).toBe('u-amy');
    expect(ownerOf({ topic: 'approvals', filterPolicy: { userId: ['u-amy'] } })).toBeUndefined();
    expect(ownerOf({ topic: 'approvals', filterPolicy: { approver: ['u-amy', 'u-ada'] } })).toBeUndefined();
    expect(ownerOf({ topic: 'approvals', filterPolicy: { approver: ['u-amy'], environment: ['Staging'] } })).toBeUndefined();
    expect(ownerOf({ topic: 'approvals', filterPolicy: { approver: [{ prefix: 'u-' }] } })).toBeUndefined();
    expect(ownerOf({ topic: 'approvals', filterPolicy: undefined })).toBeUndefined();
  });
});

describe('the plan', () => {
  const wanted = wantedSubscriptions({ Staging: ['u-amy'] }, [amy, dan]).wanted;

  it('subscribes what is missing and leaves confirmed and pending subscriptions alone', () => {
    const existing = [confirmed('notifications', 'amy@example.com', 'u-amy'), { topic: 'approvals' as const, email: 'amy@example.com', pending: true }];
    const plan = planSubscriptions(wanted, existing);
    expect(plan.steps).toEqual([{ kind: 'subscribe', topic: 'notifications', userId: 'u-dan', email: 'dan@example.com' }]);
    expect(plan.statuses).toEqual([
      { topic: 'notifications', userId: 'u-amy', email: 'amy@example.com', state: 'confirmed' },
      {
        topic: 'approvals',
        userId: 'u-amy',
        email: 'amy@example.com',
        state: 'pending-confirmation',
        detail: 'waiting for the confirmation link SNS mailed to this address',
      },
    ]);
  });

  it('is empty once everything wanted exists (addresses compared without case)', () => {
    const existing = [
      confirmed('notifications', 'Amy@Example.com', 'u-amy'),
      confirmed('notifications', 'dan@example.com', 'u-dan'),
      confirmed('approvals', 'amy@example.com', 'u-amy'),
    ];
    expect(planSubscriptions(wanted, existing).steps).toEqual([]);
  });

  it('unsubscribes confirmed subscriptions of ours nobody wants, never pending ones or subscriptions of another shape', () => {
    const existing = [
      confirmed('notifications', 'amy@example.com', 'u-amy'),
      confirmed('notifications', 'dan@example.com', 'u-dan'),
      confirmed('approvals', 'amy@example.com', 'u-amy'),
      confirmed('approvals', 'dan@example.com', 'u-dan', 'arn:dan-approvals'),
      { topic: 'approvals' as const, email: 'old@example.com', pending: true },
      { topic: 'approvals' as const, email: 'oncall@example.com', arn: 'arn:oncall', pending: false, filterPolicy: { environment: ['Production'] } },
      { topic: 'notifications' as const, email: 'audit@example.com', arn: 'arn:audit', pending: false },
    ];
    expect(planSubscriptions(wanted, existing).steps).toEqual([
      { kind: 'unsubscribe', topic: 'approvals', userId: 'u-dan', email: 'dan@example.com', arn: 'arn:dan-approvals' },
    ]);
  });

  it('re-points a confirmed subscription of an address whose former owner is not wanted there, instead of mailing a new confirmation', () => {
    const existing = [confirmed('notifications', 'dan@example.com', 'u-dan-old', 'arn:reuse'), confirmed('notifications', 'amy@example.com', 'u-amy')];
    const plan = planSubscriptions(wanted, existing);
    expect(plan.steps).toEqual([
      { kind: 'refilter', topic: 'notifications', userId: 'u-dan', email: 'dan@example.com', arn: 'arn:reuse', previousUserId: 'u-dan-old' },
      { kind: 'subscribe', topic: 'approvals', userId: 'u-amy', email: 'amy@example.com' },
    ]);
  });

  it('reports a conflict, and touches nothing, where the address already has a subscription of another shape', () => {
    const existing = [{ topic: 'approvals' as const, email: 'amy@example.com', arn: 'arn:manual', pending: false, filterPolicy: undefined }];
    const plan = planSubscriptions(
      wanted.filter((w) => w.topic === 'approvals'),
      existing,
    );
    expect(plan.steps).toEqual([]);
    expect(plan.statuses).toEqual([expect.objectContaining({ topic: 'approvals', userId: 'u-amy', state: 'conflict' })]);
  });

  it('with a scope, considers only that person: their wanted subscriptions and what is filtered on them or sent to their address', () => {
    const existing = [
      confirmed('approvals', 'dan@example.com', 'u-dan', 'arn:dan-approvals'),
      confirmed('approvals', 'eve@example.com', 'u-eve', 'arn:eve-approvals'),
    ];
    const forDan = planSubscriptions(wanted, existing, { userId: 'u-dan', emails: ['dan@example.com'] });
    expect(forDan.steps).toEqual([
      { kind: 'subscribe', topic: 'notifications', userId: 'u-dan', email: 'dan@example.com' },
      { kind: 'unsubscribe', topic: 'approvals', userId: 'u-dan', email: 'dan@example.com', arn: 'arn:dan-approvals' },
    ]);
    // A disabled user is wanted nowhere: everything of theirs goes.
    const noneWanted = planSubscriptions([], [confirmed('notifications', 'dan@example.com', 'u-dan', 'arn:dan-n')], { userId: 'u-dan', emails: [] });
    expect(noneWanted.steps).toEqual([{ kind: 'unsubscribe', topic: 'notifications', userId: 'u-dan', email: 'dan@example.com', arn: 'arn:dan-n' }]);
  });
});
