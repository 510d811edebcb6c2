import { DEPLOYMENT_STATUSES } from '../../domain/deployment.ts';
import { ENVIRONMENTS } from '../../domain/environments.ts';
import { countAll } from '../../lib/aws.ts';
import { allDegraded } from '../../lib/degraded.ts';
import { apiHandler, json } from '../../lib/http.ts';
import { tableName } from '../../lib/tables.ts';

/** How far back /metrics counts deployments. */
const WINDOW_HOURS = 24;

export const handler = apiHandler({
  /** Liveness for load balancers and `npm start`: no dependency touched. */
  'GET /health': async () => json(200, { status: 'ok', service: 'kmod-orchestrator', time: new Date().toISOString() }),

  /** Prometheus text exposition: recent deployments by status, nodes per environment, pending approvals, Degraded modules. */
  'GET /metrics': async () => {
    const since = new Date(Date.now() - WINDOW_HOURS * 3600_000).toISOString();
    const byStatus = await Promise.all(
      DEPLOYMENT_STATUSES.map(async (status) => [
        status,
        await countAll({
          TableName: tableName('deployments'),
          IndexName: 'byCreatedAt',
          KeyConditionExpression: 'listKey = :k AND createdAt >= :since',
          FilterExpression: '#s = :status',
          ExpressionAttributeNames: { '#s': 'status' },
          ExpressionAttributeValues: { ':k': 'deployments', ':since': since, ':status': status },
        }),
      ]),
    );
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
    const degraded = await allDegraded();
    const lines = [
      `# HELP kmod_deployments Deployments created in the last ${WINDOW_HOURS} h, by current status.`,
      '# TYPE kmod_deployments gauge',
      ...byStatus.map(([s, n]) => `kmod_deployments{status="${s}"} ${n}`),
      '# HELP kmod_nodes Registered nodes per environment.',
      '# TYPE kmod_nodes gauge',
      ...nodes.map(([e, n]) => `kmod_nodes{environment="${e}"} ${n}`),
      '# HELP kmod_approvals_pending Approval gates waiting for a decision.',
      '# TYPE kmod_approvals_pending gauge',
      `kmod_approvals_pending ${pending}`,
      '# HELP kmod_degraded_modules Modules left Degraded per environment (a rollback could not finish; new deployments refused until repaired).',
      '# TYPE kmod_degraded_modules gauge',
      ...ENVIRONMENTS.map((e) => `kmod_degraded_modules{environment="${e}"} ${degraded.filter((x) => x.environment === e).length}`),
      '# HELP kmod_environment_degraded 1 for each module and environment left Degraded, labelled with the deployment to roll back.',
      '# TYPE kmod_environment_degraded gauge',
      ...degraded.map((x) => `kmod_environment_degraded{environment="${x.environment}",module="${x.module}",deployment="${x.mark.deploymentId}"} 1`),
      '',
    ];
    return { statusCode: 200, headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }, body: lines.join('\n') };
  },
});
