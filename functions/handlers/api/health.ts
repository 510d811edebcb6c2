import { DEPLOYMENT_STATUSES } from '../../domain/deployment.ts';
import { ENVIRONMENTS } from '../../domain/environments.ts';
import { countAll, queryAll } from '../../lib/aws.ts';
import { allDegraded } from '../../lib/degraded.ts';
import { apiHandler, json } from '../../lib/http.ts';
import { exposition, type GaugeSample, readStoredSamples } from '../../lib/metrics.ts';
import { tableName } from '../../lib/tables.ts';

/** How far back /metrics counts deployments. */
const WINDOW_HOURS = 24;

export const handler = apiHandler({
  /** Liveness for load balancers and `npm start`: no dependency touched. */
  'GET /health': async () => json(200, { status: 'ok', service: 'kmod-orchestrator', time: new Date().toISOString() }),

  /**
   * Prometheus text exposition (docs/adr/0027-prometheus-metrics.md): the stored business counters and
   * histograms, and gauges derived at scrape time (recent deployments by status, nodes per environment,
   * pending approvals, Degraded modules).
   */
  'GET /metrics': async () => {
    const since = new Date(Date.now() - WINDOW_HOURS * 3600_000).toISOString();
    // One paged query of the last day's deployments (status only), counted here: not one query per status.
    const recent = await queryAll<{ status: string }>({
      TableName: tableName('deployments'),
      IndexName: 'byCreatedAt',
      KeyConditionExpression: 'listKey = :k AND createdAt >= :since',
      ProjectionExpression: '#s',
      ExpressionAttributeNames: { '#s': 'status' },
      ExpressionAttributeValues: { ':k': 'deployments', ':since': since },
    });
    const byStatus = DEPLOYMENT_STATUSES.map((status) => [status, recent.filter((d) => d.status === status).length] as const);
    const nodes = await Promise.all(
      ENVIRONMENTS.map(async (env) => [
        env,
        await countAll({
          TableName: tableName('nodes'),
          KeyConditionExpression: 'environment = :e',
          FilterExpression: 'attribute_not_exists(decommissionedAt)',
          ExpressionAttributeValues: { ':e': env },
        }),
      ]),
    );
    const pending = await countAll({
      TableName: tableName('approvals'),
      IndexName: 'byStatus',
      KeyConditionExpression: '#s = :p',
      ExpressionAttributeNames: { '#s': 'status' },
      ExpressionAttributeValues: { ':p': 'Pending' },
    });
    const [degraded, stored] = await Promise.all([allDegraded(), readStoredSamples()]);
    const gauges: GaugeSample[] = [
      ...byStatus.map(([status, value]) => ({ name: 'kmod_deployments' as const, labels: { status: String(status) }, value: Number(value) })),
      ...nodes.map(([environment, value]) => ({ name: 'kmod_nodes' as const, labels: { environment: String(environment) }, value: Number(value) })),
      { name: 'kmod_approvals_pending', labels: {}, value: pending },
      ...ENVIRONMENTS.map((e) => ({
        name: 'kmod_degraded_modules' as const,
        labels: { environment: e },
        value: degraded.filter((x) => x.environment === e).length,
      })),
      ...degraded.map((x) => ({
        name: 'kmod_environment_degraded' as const,
        labels: { environment: x.environment, module: x.module, deployment: x.mark.deploymentId },
        value: 1,
      })),
    ];
    const { contentType, body } = await exposition(stored, gauges);
    return { statusCode: 200, headers: { 'content-type': contentType }, body };
  },
});
