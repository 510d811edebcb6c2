/**
 * Where an environment's traffic goes. The product talks to the `TrafficRouter` interface only;
 * which implementation serves an environment is configuration (docs/runbooks/traffic-router.md,
 * docs/adr/0020-traffic-routers.md):
 *
 * - `cluster-table` (default): the live colour kept in the Clusters table, a record of intent that
 *   moves no request; canary waves stay node counts.
 * - `local`: the local cloud's reverse proxy (localcloud/router.ts), driven through its control API.
 * - `alb`: ALB weighted target groups; `route53`: Route 53 weighted records (functions/lib/routers/).
 *
 * Every implementation also keeps the Clusters table's `activeColour` (the cluster view reads it).
 */
import { GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import { ENVIRONMENTS, ENVIRONMENT_PROFILES, type Environment } from '../domain/environments.ts';
import { strategyFor } from '../strategies/registry.ts';
import { otherColour, type Colour } from '../domain/strategy.ts';
import type { DesiredModules } from '../domain/convergence.ts';
import type { DegradedModules } from '../domain/degraded.ts';
import { batchGetAll, dynamo } from './aws.ts';
import { listNodes, type NodeRecord } from './nodes.ts';
import { tableName } from './tables.ts';
import { logger } from './telemetry.ts';
import { albRouter } from './routers/alb.ts';
import { route53Router } from './routers/route53.ts';

/** A route to the Blue-Green idle colour before it takes traffic: a base URL and the headers that select it. */
export interface PreviewRoute {
  url: string;
  headers: Record<string, string>;
}

export interface TrafficRouter {
  /** `cluster-table`, `local`, `alb`, `route53`. */
  readonly kind: string;
  /**
   * Whether requests really move by weight: then canary waves are shares of traffic and the smoke
   * test goes through the preview route. False: node-count canary, smoke test on the agents.
   */
  readonly weighted: boolean;
  activeColour(environment: Environment): Promise<Colour>;
  /** Send all traffic to `colour`, in one step (the idle colour becomes the preview). Idempotent. */
  switchTo(environment: Environment, colour: Colour, by: string): Promise<void>;
  /**
   * Canary: `percent` of requests to `canaryNodes`, the rest to the other nodes (0: none to the
   * canary nodes); no canary nodes: one group of every node again. Idempotent; takes effect
   * before it returns.
   */
  setCanaryWeight(environment: Environment, canaryNodes: readonly string[], percent: number, by: string): Promise<void>;
  /** Requests the router answered per node so far (cumulative), or undefined when it does not count. */
  servedCounts(environment: Environment): Promise<Record<string, number> | undefined>;
  /** The preview route of the idle colour, or undefined when the router has none. */
  previewRoute(environment: Environment): Promise<PreviewRoute | undefined>;
  /**
   * A node joined, moved its workload endpoint (`previous` is its record before) or left
   * (decommissioned): route to it from now on, where its colour or group says, or no more. The
   * rest of the table (weights, the other nodes) stays as it is. Optional: without it, node
   * changes reach the router with the next switch or canary wave.
   */
  updateNode?(environment: Environment, node: NodeRecord, previous: NodeRecord | undefined, by: string): Promise<void>;
}

export interface ClusterRecord {
  environment: Environment;
  activeColour?: Colour;
  previousColour?: Colour;
  switchedAt?: string;
  switchedBy?: string;
  /** Canary under way with a weighted router: the share of traffic on the canary nodes. */
  trafficWeights?: { canaryPercent: number; canaryNodes: number; setAt: string; setBy: string };
  /** The environment's desired state, per module (functions/lib/desiredState.ts). */
  desiredModules?: DesiredModules;
  /** Modules whose rollback could not finish here, so the environment runs mixed versions (functions/lib/degraded.ts). */
  degradedModules?: DegradedModules;
}

export async function getCluster(environment: Environment, opts: { consistent?: boolean } = {}): Promise<ClusterRecord | undefined> {
  const r = await dynamo().send(new GetCommand({ TableName: tableName('clusters'), Key: { environment }, ConsistentRead: opts.consistent ?? true }));
  return r.Item as ClusterRecord | undefined;
}

/** Several environments' records in one BatchGetItem (the clusters overview reads all four). */
export async function getClusters(environments: readonly Environment[]): Promise<Map<Environment, ClusterRecord>> {
  const items = await batchGetAll<ClusterRecord>(
    tableName('clusters'),
    environments.map((environment) => ({ environment })),
  );
  return new Map(items.map((c) => [c.environment, c]));
}

/** Keep the Clusters table's record of the canary split (the cluster view reads it). */
export async function recordWeights(environment: Environment, canaryNodes: readonly string[], percent: number, by: string): Promise<void> {
  const split = canaryNodes.length > 0;
  await dynamo().send(
    new UpdateCommand({
      TableName: tableName('clusters'),
      Key: { environment },
      UpdateExpression: split ? 'SET trafficWeights = :w' : 'REMOVE trafficWeights',
      ExpressionAttributeValues: split
        ? { ':w': { canaryPercent: percent, canaryNodes: canaryNodes.length, setAt: new Date().toISOString(), setBy: by } }
        : undefined,
    }),
  );
}

export const clusterTableRouter: TrafficRouter = {
  kind: 'cluster-table',
  weighted: false,
  async activeColour(environment) {
    return (await getCluster(environment))?.activeColour ?? 'blue';
  },
  async switchTo(environment, colour, by) {
    const current = await clusterTableRouter.activeColour(environment);
    if (current === colour) return;
    await dynamo().send(
      new UpdateCommand({
        TableName: tableName('clusters'),
        Key: { environment },
        UpdateExpression: 'SET activeColour = :c, previousColour = :p, switchedAt = :t, switchedBy = :by',
        ExpressionAttributeValues: { ':c': colour, ':p': current, ':t': new Date().toISOString(), ':by': by },
      }),
    );
  },
  // Nothing routes by weight here: the canary stays a node count.
  async setCanaryWeight() {},
  async servedCounts() {
    return undefined;
  },
  async previewRoute() {
    return undefined;
  },
};

/** The node-level route table every weighted adapter builds from (backends with a workload endpoint). */
export interface RoutePlan {
  groups: { name: string; weight: number; nodes: NodeRecord[] }[];
  preview: NodeRecord[];
}

/**
 * What should be live now: Blue-Green environments, the live colour (the other one the preview);
 * others, one group of every node, or the canary split.
 */
export function routePlan(nodes: readonly NodeRecord[], coloured: boolean, live: Colour, canary?: { nodes: readonly string[]; percent: number }): RoutePlan {
  const routable = nodes.filter((n) => n.workloadUrl && !n.decommissionedAt);
  if (coloured) {
    return {
      groups: [{ name: live, weight: 100, nodes: routable.filter((n) => n.colour === live) }],
      preview: routable.filter((n) => n.colour === otherColour(live)),
    };
  }
  // No canary nodes: one group of every node. Otherwise the split; a 0 % canary (a rollback moving
  // traffic off the canary first) leaves only the other nodes live.
  if (!canary || canary.nodes.length === 0) return { groups: [{ name: 'stable', weight: 100, nodes: routable }], preview: [] };
  const ids = new Set(canary.nodes);
  return {
    groups: [
      { name: 'canary', weight: canary.percent, nodes: routable.filter((n) => ids.has(n.nodeId)) },
      { name: 'stable', weight: 100 - canary.percent, nodes: routable.filter((n) => !ids.has(n.nodeId)) },
    ],
    preview: [],
  };
}

/** A router's table as the local router holds it: groups of backends by weight, and the preview backends. */
export interface RouteTableSpec {
  groups: { name: string; weight: number; backends: { nodeId: string; colour?: Colour; url: string }[] }[];
  preview?: { nodeId: string; colour?: Colour; url: string }[];
}

const routable = (n: NodeRecord) => Boolean(n.workloadUrl) && !n.decommissionedAt;

/**
 * The table with one node's change applied (undefined: nothing to change). A node already routed
 * keeps its place (its group or the preview) with its new endpoint; a new one goes where its colour
 * says (Blue-Green: the live colour's group, otherwise the preview) or to the stable group (not
 * into a canary split: it runs the environment's desired version); a node that left is removed.
 */
export function placeNode(table: RouteTableSpec, node: NodeRecord, coloured: boolean, live: Colour): RouteTableSpec | undefined {
  const backend = { nodeId: node.nodeId, ...(node.colour ? { colour: node.colour } : {}), url: node.workloadUrl ?? '' };
  const without = <T extends { nodeId: string }>(list: readonly T[]) => list.filter((b) => b.nodeId !== node.nodeId);
  const inGroups = table.groups.filter((g) => g.backends.some((b) => b.nodeId === node.nodeId)).map((g) => g.name);
  const inPreview = (table.preview ?? []).some((b) => b.nodeId === node.nodeId);
  const next: RouteTableSpec = {
    groups: table.groups.map((g) => ({ ...g, backends: without(g.backends) })),
    ...(table.preview ? { preview: without(table.preview) } : {}),
  };
  if (routable(node)) {
    let groups = inGroups;
    let preview = inPreview;
    if (!groups.length && !preview) {
      const home = coloured ? live : 'stable';
      if (coloured && node.colour !== live) preview = true;
      else if (next.groups.some((g) => g.name === home)) groups = [home];
      // No such group: the table has no live colour or stable group yet (none routed): start it.
      else if (next.groups.every((g) => g.backends.length === 0)) {
        next.groups = [{ name: home, weight: 100, backends: [] }];
        groups = [home];
      } else groups = [[...next.groups].sort((a, b) => b.weight - a.weight)[0].name];
    }
    for (const g of next.groups) if (groups.includes(g.name)) g.backends.push(backend);
    if (preview) next.preview = [...(next.preview ?? []), backend];
  }
  return JSON.stringify(next) === JSON.stringify({ groups: table.groups, ...(table.preview ? { preview: table.preview } : {}) }) ? undefined : next;
}

/** Tell the environment's router about a node change; a router that cannot be told now is told by the next switch or wave. */
export async function routeNodeChange(node: NodeRecord, previous: NodeRecord | undefined, by: string): Promise<void> {
  if (!node.workloadUrl && !previous?.workloadUrl) return;
  try {
    const router = trafficRouter(node.environment);
    await router.updateNode?.(node.environment, node, previous, by);
  } catch (e) {
    logger.warn('the traffic router could not be updated for a node change; the next switch or canary wave applies it', {
      nodeId: node.nodeId,
      environment: node.environment,
      error: (e as Error).message,
    });
  }
}

/** Whether an environment's strategy splits its nodes into colours (Blue-Green). */
export const usesColours = (environment: Environment): boolean => strategyFor(ENVIRONMENT_PROFILES[environment].strategy).usesColours;

const routerUrls = z.record(z.string(), z.string().url());

/**
 * The local cloud's router of an environment (localcloud/router.ts), through its control API.
 * `coloured`: the environment deploys Blue-Green (routes by colour) rather than by node groups.
 */
export function localRouter(url: string, token: string, coloured: (environment: Environment) => boolean): TrafficRouter {
  const control = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${url}/_kmod/router/${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(10_000),
    });
    if (!r.ok) throw new Error(`the local router at ${url} answered ${method} ${path} with HTTP ${r.status}: ${await r.text()}`);
    return r.json() as Promise<Record<string, unknown>>;
  };
  const backend = (n: NodeRecord) => ({ nodeId: n.nodeId, colour: n.colour, url: n.workloadUrl! });
  const apply = async (plan: RoutePlan, by: string) => {
    await control('PUT', 'routes', {
      groups: plan.groups.map((g) => ({ name: g.name, weight: g.weight, backends: g.nodes.map(backend) })),
      preview: plan.preview.map(backend),
      by,
    });
  };
  const router: TrafficRouter = {
    kind: 'local',
    weighted: true,
    activeColour: (environment) => clusterTableRouter.activeColour(environment),
    async switchTo(environment, colour, by) {
      // The router first (the real switch, one table swap), then the record.
      await apply(routePlan(await listNodes(environment), true, colour), by);
      await clusterTableRouter.switchTo(environment, colour, by);
    },
    async setCanaryWeight(environment, canaryNodes, percent, by) {
      await apply(routePlan(await listNodes(environment), coloured(environment), await router.activeColour(environment), { nodes: canaryNodes, percent }), by);
      await recordWeights(environment, canaryNodes, percent, by);
    },
    async servedCounts() {
      return (await control('GET', 'stats')).nodes as Record<string, number>;
    },
    async previewRoute() {
      return { url, headers: { 'x-kmod-preview': '1' } };
    },
    async updateNode(environment, node, _previous, by) {
      // Read, change one node, write back only if nobody replaced the table meanwhile (a wave or a
      // switch): the router refuses a PUT whose ifVersion is not its current version.
      for (let attempt = 0; attempt < 5; attempt++) {
        const current = (await control('GET', 'routes')) as unknown as RouteTableSpec & { version: number };
        const next = placeNode(current, node, coloured(environment), await router.activeColour(environment));
        if (!next) return;
        const r = await fetch(`${url}/_kmod/router/routes?ifVersion=${current.version}`, {
          method: 'PUT',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ ...next, by }),
          signal: AbortSignal.timeout(10_000),
        });
        if (r.ok) return;
        if (r.status !== 409) throw new Error(`the local router at ${url} answered PUT routes with HTTP ${r.status}: ${await r.text()}`);
      }
      throw new Error(`the local router at ${url} kept changing; ${node.nodeId} is routed by the next switch or wave`);
    },
  };
  return router;
}

/** Which router each environment uses: TRAFFIC_ROUTERS (`{"Staging":"local"}`) over TRAFFIC_ROUTER (all). */
export function routerKind(environment: Environment): string {
  const perEnv = z.record(z.string(), z.string()).parse(JSON.parse(process.env.TRAFFIC_ROUTERS || '{}'));
  return perEnv[environment] ?? process.env.TRAFFIC_ROUTER ?? 'cluster-table';
}

const adapters = new Map<string, (environment: Environment) => TrafficRouter>([
  ['cluster-table', () => clusterTableRouter],
  [
    'local',
    (environment) => {
      const urls = routerUrls.parse(JSON.parse(process.env.LOCAL_ROUTER_URLS || '{}'));
      const url = urls[environment];
      if (!url) throw new Error(`${environment} uses the local router, but LOCAL_ROUTER_URLS names none for it`);
      return localRouter(url, process.env.LOCAL_ROUTER_TOKEN ?? '', usesColours);
    },
  ],
]);

adapters.set('alb', (environment) => albRouter(environment));
adapters.set('route53', (environment) => route53Router(environment));

/** Adds an adapter kind (e.g. a service mesh's). */
export function registerRouterKind(kind: string, make: (environment: Environment) => TrafficRouter): void {
  adapters.set(kind, make);
}

/** The router of an environment (configuration: TRAFFIC_ROUTER, TRAFFIC_ROUTERS; docs/runbooks/traffic-router.md). */
export function trafficRouter(environment: Environment = 'Staging'): TrafficRouter {
  const kind = routerKind(environment);
  const make = adapters.get(kind);
  if (!make) throw new Error(`TRAFFIC_ROUTER=${kind} is not a known router`);
  return make(environment);
}

/** Environments whose router moves requests by weight. */
export const weightedEnvironments = (): Environment[] => ENVIRONMENTS.filter((e) => trafficRouter(e).weighted);
