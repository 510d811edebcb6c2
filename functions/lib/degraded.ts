/**
 * Degraded environments (functions/domain/degraded.ts): the mark a rollback that could not finish
 * leaves on a module in an environment, kept in the environment's Clusters item under
 * `degradedModules`, and cleared by the repair. Every change is one transaction with its audit
 * event, under a condition on the deployment the mark belongs to, so Step Functions retries and
 * concurrent heartbeats write (and audit) it once.
 */
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { isRepaired, sameStuckNodes, type DegradedMark, type DegradedModules, type RunningVersion, type StuckNode } from '../domain/degraded.ts';
import type { DesiredModule } from '../domain/convergence.ts';
import { ENVIRONMENTS, type Environment } from '../domain/environments.ts';
import type { Colour } from '../domain/strategy.ts';
import { auditItem } from './audit.ts';
import { dynamo } from './aws.ts';
import { conditionInput, or, type Condition } from './conditions.ts';
import { isConditionFailure } from './deployments.ts';
import { environmentSubject } from './desiredState.ts';
import { getNodes, runningModules } from './nodes.ts';
import type { TransactItem } from './locks.ts';
import { tableName } from './tables.ts';
import { getCluster } from './trafficRouter.ts';
import { logger } from './telemetry.ts';
import { transactWrite } from './auditChain.ts';

const key = (environment: Environment) => ({ TableName: tableName('clusters'), Key: { environment } });

/** No mark on the module, or (for its own repair) the mark of this deployment. */
export function notDegraded(module: string, allowDeployment?: string): Condition {
  const free: Condition = { expression: 'attribute_not_exists(#dm.#mod)', names: { '#dm': 'degradedModules', '#mod': module } };
  if (!allowDeployment) return free;
  return or(free, {
    expression: '#dm.#mod.#dep = :degradedBy',
    names: { '#dm': 'degradedModules', '#mod': module, '#dep': 'deploymentId' },
    values: { ':degradedBy': allowDeployment },
  });
}

/**
 * The condition checks a request that would change the module in these environments adds to its
 * transaction: each environment not degraded for the module (or degraded by `allowDeployment`).
 * Tagged with the environment, so a cancelled transaction tells which one refused.
 */
export function degradedCheckItems(module: string, environments: readonly Environment[], allowDeployment?: string) {
  return environments.map((environment) => ({
    item: { ConditionCheck: { ...key(environment), ...conditionInput(notDegraded(module, allowDeployment)) } } as TransactItem,
    degraded: { moduleName: module, environment },
  }));
}

export async function getDegraded(environment: Environment, opts: { consistent?: boolean } = {}): Promise<DegradedModules> {
  return (await getCluster(environment, opts))?.degradedModules ?? {};
}

/** Every mark in every environment (the cluster list and /metrics). */
export async function allDegraded(): Promise<{ environment: Environment; module: string; mark: DegradedMark }[]> {
  const per = await Promise.all(ENVIRONMENTS.map(async (e) => [e, await getDegraded(e, { consistent: false })] as const));
  return per.flatMap(([environment, marks]) => Object.entries(marks).map(([module, mark]) => ({ environment, module, mark })));
}

/**
 * A rollback could not bring these nodes back: mark the module Degraded in the environment (or
 * update the list of stuck nodes of this deployment's mark). Idempotent: the same nodes again
 * change nothing. Returns whether it wrote.
 */
export async function markDegraded(
  d: { executionId: string; moduleName: string; version: string },
  environment: Environment,
  stuckNodes: Record<string, StuckNode>,
  actor: string,
): Promise<boolean> {
  const current = (await getDegraded(environment))[d.moduleName];
  if (current && current.deploymentId === d.executionId && sameStuckNodes(current, stuckNodes)) return false;
  const now = new Date().toISOString();
  const mark: DegradedMark = {
    deploymentId: d.executionId,
    version: d.version,
    stuckNodes,
    since: current?.deploymentId === d.executionId ? current.since : now,
    ...(current ? { updatedAt: now } : {}),
  };
  // A nested SET needs its parent map (creating the Clusters item if the environment has none yet).
  await dynamo().send(
    new UpdateCommand({
      ...key(environment),
      UpdateExpression: 'SET degradedModules = if_not_exists(degradedModules, :empty)',
      ExpressionAttributeValues: { ':empty': {} },
    }),
  );
  const condition = notDegraded(d.moduleName, d.executionId);
  try {
    await transactWrite([
      {
        Update: {
          ...key(environment),
          UpdateExpression: 'SET #dm.#mod = :mark',
          ConditionExpression: condition.expression,
          ExpressionAttributeNames: condition.names,
          ExpressionAttributeValues: { ...condition.values, ':mark': mark },
        },
      },
      {
        Put: auditItem({
          subject: environmentSubject(environment),
          category: 'deployment',
          action: 'environment.degraded',
          actor,
          details: {
            environment,
            module: d.moduleName,
            deploymentId: d.executionId,
            version: d.version,
            stuckNodes: Object.keys(stuckNodes).sort(),
            message: Object.entries(stuckNodes)
              .map(([id, s]) => `${id}: ${s.message}`)
              .join('; '),
          },
        }),
      },
    ]);
    return true;
  } catch (e) {
    if (!isConditionFailure(e)) throw e;
    // Another deployment's mark: it cannot have started while this one held the locks; leave it.
    logger.warn('degraded mark of another deployment left in place', { environment, module: d.moduleName, deploymentId: d.executionId });
    return false;
  }
}

/**
 * The environment is consistent again: clear the mark of `deploymentId`, audited with how it was
 * repaired. False when there is no such mark (never set, or cleared already: a retry).
 */
export async function clearDegraded(
  environment: Environment,
  module: string,
  deploymentId: string,
  actor: string,
  repairedBy: 'rollback' | 'convergence',
  details: Record<string, unknown> = {},
): Promise<boolean> {
  try {
    await transactWrite([
      {
        Update: {
          ...key(environment),
          UpdateExpression: 'REMOVE #dm.#mod',
          ConditionExpression: '#dm.#mod.#dep = :degradedBy',
          ExpressionAttributeNames: { '#dm': 'degradedModules', '#mod': module, '#dep': 'deploymentId' },
          ExpressionAttributeValues: { ':degradedBy': deploymentId },
        },
      },
      {
        Put: auditItem({
          subject: environmentSubject(environment),
          category: 'deployment',
          action: 'environment.repaired',
          actor,
          details: { environment, module, deploymentId, repairedBy, ...details },
        }),
      },
    ]);
    return true;
  } catch (e) {
    if (isConditionFailure(e)) return false;
    throw e;
  }
}

/**
 * After a node's heartbeat: clear every mark this node was stuck in once all of the mark's stuck
 * nodes run what the environment should run. `reported` is what this node runs now; the others'
 * come from their records (what they last reported, or what the orchestrator last set).
 */
export async function clearRepairedByConvergence(
  node: { environment: Environment; nodeId: string; colour?: Colour },
  reported: Record<string, { version: string }>,
  degraded: DegradedModules,
  desired: Record<string, DesiredModule>,
): Promise<void> {
  const { environment, nodeId } = node;
  for (const [module, mark] of Object.entries(degraded)) {
    if (!(nodeId in mark.stuckNodes)) continue;
    const others = await getNodes(
      environment,
      Object.keys(mark.stuckNodes).filter((id) => id !== nodeId),
    );
    const running = (id: string): RunningVersion => {
      if (id === nodeId) return reported[module]?.version ?? null;
      const n = others.get(id);
      if (!n || n.decommissionedAt) return undefined;
      return runningModules(n)[module]?.version ?? null;
    };
    const entry = desired[module];
    const colourOf = (id: string) => (id === nodeId ? node.colour : others.get(id)?.colour);
    const desiredFor = (id: string) => (entry && (!entry.colour || entry.colour === colourOf(id)) ? { version: entry.version } : undefined);
    if (!isRepaired(mark, running, desiredFor)) continue;
    await clearDegraded(environment, module, mark.deploymentId, 'system:convergence', 'convergence', {
      nodes: Object.fromEntries(Object.keys(mark.stuckNodes).map((id) => [id, running(id) ?? null])),
    });
  }
}
