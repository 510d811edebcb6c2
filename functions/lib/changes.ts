import type { DeploymentRecord } from '../domain/deployment.ts';
import type { Environment } from '../domain/environments.ts';
import { getPlan, listBatches } from './targets.ts';

/**
 * Environments in which this deployment changed something not yet put back (nodes on the new
 * version, or blue-green traffic moved), newest first: the order to roll back in. A batch still in
 * flight (started, not yet counted: a cancel stopped the execution while its DeployBatch ran) may
 * have changed nodes it has not recorded yet, so its environment counts as changed; its rollback
 * waits for the batch to be counted (handlers/tasks/rollbackEnvironment.ts).
 */
export async function changedEnvironments(d: Pick<DeploymentRecord, 'executionId' | 'stageOrder' | 'stages'>): Promise<Environment[]> {
  const envs = d.stageOrder.filter((s) => d.stages[s]?.kind === 'environment').map((s) => d.stages[s].environment!);
  const changed: Environment[] = [];
  for (const env of envs) {
    const batches = await listBatches(d.executionId, env);
    if (batches.length === 0) continue;
    const plan = await getPlan(d.executionId, env);
    const inFlight = batches.some((b) => b.startedAt !== undefined && b.countedAt === undefined);
    if (plan?.trafficSwitched || inFlight || batches.some((b) => Object.values(b.nodes).some((n) => n.status === 'Deployed' || n.status === 'RollbackFailed')))
      changed.push(env);
  }
  return changed.reverse();
}

/** The node ids this deployment targeted in an environment (all nodes, or the blue-green colour). */
export async function targetedNodeIds(executionId: string, environment: Environment): Promise<string[]> {
  return (await listBatches(executionId, environment)).flatMap((b) => Object.keys(b.nodes));
}
