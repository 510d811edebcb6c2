/**
 * Where a blue-green environment's traffic goes. The product talks to this interface only; the
 * implementation here keeps the live colour in the Clusters table (the simulated router: the
 * product and the cluster view read it; simulated agents do not change behaviour by colour). A real router (ALB weighted target groups, Route 53 weighted records, a
 * service-mesh route) plugs in by implementing `TrafficRouter` and selecting it with
 * TRAFFIC_ROUTER (see docs/runbooks/traffic-router.md).
 */
import { GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { Environment } from '../domain/environments.ts';
import type { Colour } from '../domain/strategy.ts';
import type { DesiredModules } from '../domain/convergence.ts';
import type { DegradedModules } from '../domain/degraded.ts';
import { dynamo } from './aws.ts';
import { tableName } from './tables.ts';

export interface TrafficRouter {
  activeColour(environment: Environment): Promise<Colour>;
  /** Send all traffic to `colour`. Idempotent. */
  switchTo(environment: Environment, colour: Colour, by: string): Promise<void>;
}

export interface ClusterRecord {
  environment: Environment;
  activeColour?: Colour;
  previousColour?: Colour;
  switchedAt?: string;
  switchedBy?: string;
  /** The environment's desired state, per module (functions/lib/desiredState.ts). */
  desiredModules?: DesiredModules;
  /** Modules whose rollback could not finish here, so the environment runs mixed versions (functions/lib/degraded.ts). */
  degradedModules?: DegradedModules;
}

export async function getCluster(environment: Environment, opts: { consistent?: boolean } = {}): Promise<ClusterRecord | undefined> {
  const r = await dynamo().send(new GetCommand({ TableName: tableName('clusters'), Key: { environment }, ConsistentRead: opts.consistent ?? true }));
  return r.Item as ClusterRecord | undefined;
}

export const clusterTableRouter: TrafficRouter = {
  async activeColour(environment) {
    return (await getCluster(environment))?.activeColour ?? 'blue';
  },
  async switchTo(environment, colour, by) {
    const current = await this.activeColour(environment);
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
};

/** The router of an environment (configuration: TRAFFIC_ROUTER, docs/runbooks/traffic-router.md). */
export function trafficRouter(_environment?: Environment): TrafficRouter {
  const kind = process.env.TRAFFIC_ROUTER ?? 'cluster-table';
  if (kind === 'cluster-table') return clusterTableRouter;
  throw new Error(`TRAFFIC_ROUTER=${kind} is not a known router`);
}
