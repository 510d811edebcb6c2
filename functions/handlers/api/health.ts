import { DEPLOYMENT_STATUSES } from '../../domain/deployment.ts';
import { ENVIRONMENTS } from '../../domain/environments.ts';
import { countAll, queryAll } from '../../lib/aws.ts';
import { allDegraded } from '../../lib/degraded.ts';
import { DOCS_CSP, DOCS_PAGE, docsAsset } from '../../lib/apiDocs.ts';
import { notFound } from '../../domain/errors.ts';
import { apiHandler, json } from '../../lib/http.ts';
import { exposition, type GaugeSample, readStoredSamples } from '../../lib/metrics.ts';
import { tableName } from '../../lib/tables.ts';
import { readFleet } from '../../lib/fleetHealth.ts';
import { nodesByHealth } from '../../domain/fleetHealth.ts';
// Bundled into the function by esbuild (and read by tsx locally): the committed document, which
// test/unit/scripts/openapi.test.ts keeps equal to what scripts/openapi.ts generates.
import openApiDocument from '../../../docs/openapi.json' with { type: 'json' };

/** How far back /metrics counts deployments. */
const WINDOW_HOURS = 24;

export const handler = apiHandler({
  /** Liveness for load balancers and `npm start`: no dependency touched. */
  'GET /health': async () => json(200, { status: 'ok', service: 'kmod-orchestrator', time: new Date().toISOString() }),

  /** The API document (docs/openapi.json): public, like the routes it describes; cacheable for five minutes. */
  'GET /openapi.json': async () => json(200, openApiDocument, { 'cache-control': 'public, max-age=300' }),

  /** Its interactive reference: no inline script; lib/middleware/securityHeaders.ts keeps DOCS_CSP on this page. */
  'GET /docs': async () => ({
    statusCode: 200,
    headers: { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'public, max-age=300', 'content-security-policy': DOCS_CSP },
    body: DOCS_PAGE,
  }),
  'GET /docs/{asset}': async (event) => {
    const name = event.pathParameters?.asset ?? '';
    const asset = docsAsset(name);
    if (!asset) throw notFound(`docs asset ${name}`);
    return { statusCode: 200, headers: { 'content-type': asset.contentType, 'cache-control': 'public, max-age=3600' }, body: asset.body };
  },

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
    const fleet = await readFleet();
    const nodes = fleet.map(({ environment, nodes }) => [environment, nodes.length] as const);
    const tally = (keys: string[]) => {
      const m = new Map<string, number>();
      for (const k of keys) m.set(k, (m.get(k) ?? 0) + 1);
      return [...m];
    };
    // The same count the scheduled PublishNodeHealth sends to CloudWatch (domain/fleetHealth.ts).
    const health = nodesByHealth(fleet).map(({ environment, status, value }) => ({
      name: 'kmod_nodes_by_health' as const,
      labels: { environment, status },
      value,
    }));
    const versions = fleet.flatMap(({ environment: env, nodes }) =>
      tally(nodes.flatMap((n) => Object.entries(n.modules ?? {}).map(([module, m]) => JSON.stringify([module, m.version ?? 'unknown'])))).map(
        ([key, value]) => {
          const [module, version] = JSON.parse(key) as [string, string];
          return { name: 'kmod_module_version_nodes' as const, labels: { environment: env, module, version }, value };
        },
      ),
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
      ...health,
      ...versions,
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
