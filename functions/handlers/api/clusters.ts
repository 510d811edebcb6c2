import { z } from 'zod';
import { ENVIRONMENTS, ENVIRONMENT_PROFILES, type Environment } from '../../domain/environments.ts';
import { AppError } from '../../domain/errors.ts';
import { agentClient, mapLimit, type AgentCallError } from '../../lib/agentClient.ts';
import { config } from '../../lib/config.ts';
import { apiHandler, json } from '../../lib/http.ts';
import { parsePath, parseQuery } from '../../lib/parse.ts';
import { isDialOut, listNodes, listNodesByEnvironment, recordNodeHealth, type NodeRecord } from '../../lib/nodes.ts';
import { getCluster, getClusters, routerKind, trafficRouter, type ClusterRecord } from '../../lib/trafficRouter.ts';
import { averageMetrics } from '../../domain/canary.ts';
import { nodeStatus } from '../../domain/membership.ts';
import { presentFlags } from '../../domain/anomaly.ts';
import { strategyFor } from '../../strategies/registry.ts';
import { clusterConvergence } from '../../lib/convergence.ts';
import type { ConvergenceView, DesiredModules, DesiredVersion } from '../../domain/convergence.ts';
import type { DegradedModules } from '../../domain/degraded.ts';
import { pathSchema } from './pathParameters.ts';

/** A live refresh polls every agent; above this size it would be too slow for one request. */
const MAX_LIVE_REFRESH = 500;

/** The desired state as shown: each module's entry, with only the one entry it replaced. */
function presentDesired(desired: DesiredModules) {
  const brief = (e: DesiredVersion) => ({ version: e.version, deploymentId: e.deploymentId, ...(e.colour ? { colour: e.colour } : {}) });
  return Object.fromEntries(
    Object.entries(desired).map(([m, e]) => [
      m,
      {
        ...brief(e),
        revision: e.revision,
        setAt: e.setAt,
        setBy: e.setBy,
        ...(e.rolledBack ? { rolledBack: e.rolledBack } : {}),
        previous: e.previous ? brief(e.previous) : null,
      },
    ]),
  );
}

/** Each Degraded module: the deployment whose rollback could not finish, its stuck nodes, and the repair. */
function presentDegraded(degraded: DegradedModules) {
  return Object.fromEntries(
    Object.entries(degraded).map(([m, mark]) => [
      m,
      {
        status: 'Degraded',
        deploymentId: mark.deploymentId,
        version: mark.version,
        since: mark.since,
        stuckNodes: Object.entries(mark.stuckNodes)
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([nodeId, n]) => ({ nodeId, previousVersion: n.previousVersion, message: n.message })),
        repair: `POST /api/v1/deployments/${mark.deploymentId}/rollback`,
      },
    ]),
  );
}

/** Which router moves the environment's requests, and the canary split it holds now (none: every node serves alike). */
function presentTraffic(environment: Environment, cluster: ClusterRecord | undefined) {
  const w = cluster?.trafficWeights;
  let weighted = false;
  try {
    weighted = trafficRouter(environment).weighted;
  } catch {
    // Misconfigured (deployments say why): the view still answers.
  }
  return {
    router: routerKind(environment),
    weighted,
    canary: w ? { percent: w.canaryPercent, nodes: w.canaryNodes, setAt: w.setAt, setBy: w.setBy } : null,
  };
}

/**
 * A node converging to the desired state is not counted healthy, whatever its agent says: it does
 * not run what its environment should run yet.
 */
function summary(environment: Environment, nodes: NodeRecord[], cluster: ClusterRecord | undefined, convergence: Map<string, ConvergenceView>) {
  const versions: Record<string, Record<string, number>> = {};
  for (const n of nodes) {
    for (const [m, s] of Object.entries(n.modules ?? {})) {
      versions[m] ??= {};
      versions[m][s.version] = (versions[m][s.version] ?? 0) + 1;
    }
  }
  const p = ENVIRONMENT_PROFILES[environment];
  return {
    environment,
    strategy: p.strategy,
    requiresApproval: p.requiresApproval,
    nodeCount: nodes.length,
    healthyNodes: nodes.filter((n) => n.lastHealth?.status === 'healthy' && convergence.get(n.nodeId)?.state !== 'Converging').length,
    unhealthyNodes: nodes.filter((n) => n.lastHealth?.status === 'unhealthy').length,
    convergingNodes: nodes.filter((n) => convergence.get(n.nodeId)?.state === 'Converging').length,
    anomalousNodes: nodes.filter((n) => presentFlags(n.anomaly).length > 0).length,
    moduleVersions: versions,
    desiredModules: presentDesired(cluster?.desiredModules ?? {}),
    // A rollback that could not finish: these modules run mixed versions until repaired.
    degraded: Object.keys(cluster?.degradedModules ?? {}).length > 0,
    degradedModules: presentDegraded(cluster?.degradedModules ?? {}),
    traffic: presentTraffic(environment, cluster),
    ...(strategyFor(p.strategy).usesColours
      ? {
          activeColour: cluster?.activeColour ?? 'blue',
          colours: { blue: nodes.filter((n) => n.colour === 'blue').length, green: nodes.filter((n) => n.colour === 'green').length },
          switchedAt: cluster?.switchedAt ?? null,
        }
      : {}),
  };
}

/**
 * Enrolled hosts: status from their heartbeats. Fleet-managed nodes (never enrolled): Online,
 * unless this request's live poll could not reach them.
 */
function presentNode(n: NodeRecord, now: number, missed: number, notAnswering: ReadonlySet<string>, convergence: ConvergenceView | undefined) {
  const status = !n.enrolment && notAnswering.has(n.nodeId) ? 'Unreachable' : nodeStatus(n, now, missed);
  return {
    nodeId: n.nodeId,
    // A dial-out node has no address: it is reached over the WebSocket it keeps open (`connected`).
    address: isDialOut(n) ? null : n.address,
    transport: n.transport ?? 'http',
    ...(isDialOut(n) ? { connected: n.connection !== undefined, connectedAt: n.connection?.connectedAt ?? null } : {}),
    colour: n.colour,
    // Where the environment's router sends this node's share of requests (null: it serves none).
    workloadUrl: n.workloadUrl ?? null,
    status,
    lastSeenAt: n.lastSeenAt ?? null,
    membership: n.enrolment ? 'enrolled' : 'fleet',
    ...(n.labels ? { labels: n.labels } : {}),
    ...(n.decommissionedAt ? { decommissionedAt: n.decommissionedAt } : {}),
    modules: n.modules ?? {},
    ...(n.reportedModules ? { reportedModules: n.reportedModules } : {}),
    ...(convergence ? { convergence } : {}),
    health: n.lastHealth ?? null,
    metrics: n.lastMetrics ?? null,
    // Metrics beyond the node's own rolling baseline (domain/anomaly.ts), worst first.
    anomalies: presentFlags(n.anomaly),
  };
}

/** Ask every agent for its health now and store what they say (unreachable nodes are marked so). */
async function refresh(nodes: NodeRecord[]): Promise<{ nodes: NodeRecord[]; notAnswering: Set<string> }> {
  if (nodes.length > MAX_LIVE_REFRESH) throw new AppError('ValidationError', `live refresh is limited to ${MAX_LIVE_REFRESH} nodes`);
  const results = await mapLimit(nodes, config.agentConcurrency(), async (n) => {
    const h = await agentClient.health(n);
    const anomaly = await recordNodeHealth(n, h);
    return { ...n, lastHealth: { status: h.status, reasons: h.reasons, at: h.at }, lastMetrics: h.metrics, anomaly, modules: mergeModules(n, h.modules) };
  });
  const notAnswering = new Set(
    nodes.filter((_, i) => results[i].status === 'rejected' && (results[i].reason as AgentCallError).code === 'Unreachable').map((n) => n.nodeId),
  );
  const refreshed = results.map((r, i) =>
    r.status === 'fulfilled'
      ? r.value
      : { ...nodes[i], lastHealth: { status: 'unhealthy' as const, reasons: [(r.reason as Error).message], at: new Date().toISOString() } },
  );
  return { nodes: refreshed, notAnswering };
}

function mergeModules(_n: NodeRecord, reported: Record<string, { version: string; previousVersion?: string; loadedAt: string }>): NodeRecord['modules'] {
  return Object.fromEntries(Object.entries(reported).map(([m, s]) => [m, { version: s.version, previousVersion: s.previousVersion, updatedAt: s.loadedAt }]));
}

export const handler = apiHandler({
  'GET /api/v1/clusters': async () => {
    // The four cluster records in one call, every environment's nodes in one pass.
    const [records, nodesByEnvironment] = await Promise.all([getClusters(ENVIRONMENTS), listNodesByEnvironment()]);
    const clusters = await Promise.all(
      ENVIRONMENTS.map(async (e) => {
        const [nodes, cluster] = [nodesByEnvironment.get(e) ?? [], records.get(e)];
        return summary(e, nodes, cluster, await clusterConvergence(e, nodes, cluster?.desiredModules ?? {}));
      }),
    );
    return json(200, { items: clusters });
  },
  'GET /api/v1/clusters/{environment}': async (event) => {
    const { environment } = parsePath(event, pathSchema('environment'));
    const { refresh: live } = parseQuery(event, z.object({ refresh: z.enum(['true', 'false']).optional() }).strict());
    const [all, cluster] = await Promise.all([listNodes(environment, { includeDecommissioned: true }), getCluster(environment)]);
    const active = all.filter((n) => !n.decommissionedAt);
    const { nodes, notAnswering } = live === 'true' ? await refresh(active) : { nodes: active, notAnswering: new Set<string>() };
    const [now, missed] = [Date.now(), config.missedHeartbeats()];
    const convergence = await clusterConvergence(environment, nodes, cluster?.desiredModules ?? {});
    // Decommissioned nodes are listed (with their status) but counted nowhere.
    const listed = [...nodes, ...all.filter((n) => n.decommissionedAt)].map((n) => presentNode(n, now, missed, notAnswering, convergence.get(n.nodeId)));
    return json(200, { ...summary(environment, nodes, cluster, convergence), nodes: listed });
  },
  'GET /api/v1/clusters/{environment}/metrics': async (event) => {
    const { environment } = parsePath(event, pathSchema('environment'));
    parseQuery(event, z.object({}).strict());
    const nodes = await listNodes(environment);
    // Live figures from every agent when the fleet is small enough; the last reports otherwise.
    const live = nodes.length <= MAX_LIVE_REFRESH;
    const reports = live
      ? await mapLimit(nodes, config.agentConcurrency(), async (n) => {
          const h = await agentClient.health(n);
          const anomaly = await recordNodeHealth(n, h);
          return { ...h.metrics, anomalies: presentFlags(anomaly) };
        })
      : nodes.map((n) =>
          n.lastMetrics
            ? { status: 'fulfilled' as const, value: { ...n.lastMetrics, anomalies: presentFlags(n.anomaly) } }
            : { status: 'rejected' as const, reason: new Error('no report yet') },
        );
    const perNode = nodes.map((n, i) => {
      const r = reports[i];
      return r.status === 'fulfilled'
        ? { ...r.value, nodeId: n.nodeId, reporting: true }
        : { nodeId: n.nodeId, reporting: false, error: (r.reason as Error).message };
    });
    const reporting = reports.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const avg = averageMetrics(reporting);
    return json(200, {
      environment,
      at: new Date().toISOString(),
      source: live ? 'live' : 'last-reported',
      nodeCount: nodes.length,
      reportingNodes: reporting.length,
      averages: { cpuPercent: avg.cpuPercent, memoryPercent: avg.memoryPercent, latencyMs: avg.latencyMs, errorRatePercent: avg.errorRatePercent },
      totalRequestsPerSecond: avg.requestsPerSecond,
      nodes: perNode,
    });
  },
});
