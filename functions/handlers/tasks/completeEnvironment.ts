import { requireDeployment, updateStage } from '../../lib/deployments.ts';
import { recordPromotion } from '../../lib/desiredState.ts';
import { environmentInput } from '../../lib/environmentStage.ts';
import { getPlan } from '../../lib/targets.ts';
import { taskHandler } from '../../lib/task.ts';
import { trafficRouter } from '../../lib/trafficRouter.ts';

/**
 * Close an environment's stage as Succeeded, with its counts and duration. The environment's
 * desired state now names this version (first, so that a retry after a crash still records it):
 * nodes that join later, or were skipped, converge to it.
 */
export const handler = taskHandler(environmentInput, async ({ executionId, environment }) => {
  const d = await requireDeployment(executionId);
  const plan = await getPlan(executionId, environment);
  await recordPromotion(d, environment, plan);
  // A weighted canary done: every node serves again, as one group.
  if (plan?.waves) await trafficRouter(environment).setCanaryWeight(environment, [], 100, executionId);
  const stage = d.stages[environment];
  const finishedAt = new Date().toISOString();
  await updateStage(executionId, environment, {
    status: 'Succeeded',
    finishedAt,
    durationMs: stage?.startedAt ? Date.parse(finishedAt) - Date.parse(stage.startedAt) : undefined,
    message: `${d.moduleName}@${d.version} running on ${stage?.nodesDeployed ?? 0} of ${stage?.nodesTotal ?? 0} nodes`,
  });
  return { environment, nodesDeployed: stage?.nodesDeployed ?? 0 };
});
