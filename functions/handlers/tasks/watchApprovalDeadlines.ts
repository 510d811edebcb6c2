/**
 * Scheduled (EventBridge, every 5 minutes; the local cloud runs it on the same schedule): counts
 * the Pending approval gates by how close their deadline is (domain/approvalDeadlines.ts) and
 * publishes the counts as CloudWatch metrics in EMF through Powertools Metrics. The CDK app's
 * dashboard shows them and alarms on ApprovalsNearDeadline and ApprovalsOverdue
 * (docs/adr/0029-cloudwatch-dashboards-and-alarms.md, docs/runbooks/alarms.md). Reads only.
 */
import { z } from 'zod';
import { APPROVAL_METRICS, countDeadlines } from '../../domain/approvalDeadlines.ts';
import { queryAll } from '../../lib/aws.ts';
import { config } from '../../lib/config.ts';
import { tableName } from '../../lib/tables.ts';
import { taskHandler } from '../../lib/task.ts';
import { cloudwatchMetrics, MetricUnit } from '../../lib/emf.ts';
import { logger } from '../../lib/telemetry.ts';

export const handler = taskHandler(z.record(z.string(), z.unknown()), async () => {
  // The byStatus index holds every Pending gate (a handful at a time); only the two attributes are read.
  const pending = await queryAll<{ status: string; deadline: string }>({
    TableName: tableName('approvals'),
    IndexName: 'byStatus',
    KeyConditionExpression: '#s = :p',
    ProjectionExpression: '#s, deadline',
    ExpressionAttributeNames: { '#s': 'status' },
    ExpressionAttributeValues: { ':p': 'Pending' },
  });
  const warningSeconds = config.approvalDeadlineWarningSeconds();
  const counts = countDeadlines(pending, new Date(), warningSeconds);
  // Every run publishes all three, zeros included, so the alarms see data and can go back to OK.
  const metrics = cloudwatchMetrics();
  metrics.addMetric(APPROVAL_METRICS.pending, MetricUnit.Count, counts.pending);
  metrics.addMetric(APPROVAL_METRICS.nearDeadline, MetricUnit.Count, counts.nearDeadline);
  metrics.addMetric(APPROVAL_METRICS.overdue, MetricUnit.Count, counts.overdue);
  metrics.publishStoredMetrics();
  if (counts.nearDeadline || counts.overdue) logger.warn('approvals near or past their deadline', { ...counts, warningSeconds });
  return { ...counts, warningSeconds };
});
