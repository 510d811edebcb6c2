import { requireDeployment, updateStage } from '../../lib/deployments.ts';
import { recordPromotion } from '../../lib/desiredState.ts';
import { environmentInput } from '../../lib/environmentStage.ts';
import { getPlan } from '../../lib/targets.ts';
import { taskHandler } from '../../lib/task.ts';

/**
 * Close an environment's stage as Succeeded, with its counts and duration. The environment's
 * desired state now names this version (first, so that a retry after a crash still records it):
 * nodes that join later, or were skipped, converge to it.
 */
export const handler = taskHandler(environmentInput, async ({ executionId, environment }) => {
  const d = await requireDeployment(executionId);
  await recordPromotion(d, environment, await getPlan(executionId, environment));
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
