import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import { DEPLOYMENT_STATUSES } from '../../domain/deployment.ts';
import { ENVIRONMENTS } from '../../domain/environments.ts';
import { dynamo } from '../../lib/aws.ts';
import { apiHandler, json } from '../../lib/http.ts';
import { tableName } from '../../lib/tables.ts';

/** How far back /metrics counts deployments. */
const WINDOW_HOURS = 24;

async function count(input: ConstructorParameters<typeof QueryCommand>[0]): Promise<number> {
  let n = 0;
  let cursor: Record<string, unknown> | undefined;
  do {
    const r = await dynamo().send(new QueryCommand({ ...input, Select: 'COUNT', ExclusiveStartKey: cursor }));
    n += r.Count ?? 0;
    cursor = r.LastEvaluatedKey;
  } while (cursor);
  return n;
}

export const handler = apiHandler({
  /** Liveness for load balancers and `npm start`: no dependency touched. */
  'GET /health': async () => json(200, { status: 'ok', service: 'kmod-orchestrator', time: new Date().toISOString() }),

  /** Prometheus text exposition: recent deployments by status, nodes per environment, pending approvals. */
  'GET /metrics': async () => {
    const since = new Date(Date.now() - WINDOW_HOURS * 3600_000).toISOString();
    const byStatus = await Promise.all(
      DEPLOYMENT_STATUSES.map(async (status) => [
        status,
        await count({
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
        await count({ TableName: tableName('nodes'), KeyConditionExpression: 'environment = :e', ExpressionAttributeValues: { ':e': env } }),
      ]),
    );
    const pending = await count({
      TableName: tableName('approvals'),
      IndexName: 'byStatus',
      KeyConditionExpression: '#s = :p',
      ExpressionAttributeNames: { '#s': 'status' },
      ExpressionAttributeValues: { ':p': 'Pending' },
    });
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
      '',
    ];
    return { statusCode: 200, headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }, body: lines.join('\n') };
  },
});
