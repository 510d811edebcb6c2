/**
 * The approver-subscriptions custom resource (CDK Provider framework onEvent): on every create and
 * update of the stack whose approver lists changed, subscribe each approver's and each user's
 * email to their topic with their own filter policy, and remove what is no longer wanted
 * (lib/subscriptions.ts). The local cloud sends it the same Create event when it starts.
 * Deleting the stack deletes the topics and their subscriptions with them: nothing to do then.
 */
import { z } from 'zod';
import { syncSubscriptions } from '../../lib/subscriptions.ts';
import { taskHandler } from '../../lib/task.ts';
import { logger } from '../../lib/telemetry.ts';

/** The physical id is fixed: an update is the same resource, and CloudFormation never replaces it. */
export const SUBSCRIPTIONS_RESOURCE_ID = 'kmod-email-subscriptions';

const eventSchema = z.object({ RequestType: z.enum(['Create', 'Update', 'Delete']), PhysicalResourceId: z.string().optional() }).loose();

export const handler = taskHandler(eventSchema, async ({ RequestType }) => {
  if (RequestType === 'Delete') return { PhysicalResourceId: SUBSCRIPTIONS_RESOURCE_ID };
  const report = await syncSubscriptions({ actor: 'system:deploy' });
  // The log is where a deploy's operator looks; the attributes below are short enough for CloudFormation.
  logger.info('email subscriptions synchronised', { ...report });
  const count = (kind: string) => String(report.changes.filter((c) => c.kind === kind).length);
  return {
    PhysicalResourceId: SUBSCRIPTIONS_RESOURCE_ID,
    Data: {
      Subscribed: count('subscribe'),
      Refiltered: count('refilter'),
      Removed: count('unsubscribe'),
      PendingConfirmation: String(report.subscriptions.filter((s) => s.state === 'pending-confirmation').length),
      Unsubscribable: report.unsubscribable
        .map((u) => u.userId)
        .join(',')
        .slice(0, 1000),
    },
  };
});
