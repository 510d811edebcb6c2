import { requireDeployment, updateStage } from '../../lib/deployments.ts';
import { environmentInput } from '../../lib/environmentStage.ts';
import { taskHandler } from '../../lib/task.ts';

/** Close an environment's stage as Succeeded, with its counts and duration. */
export const handler = taskHandler(environmentInput, async ({ executionId, environment }) => {
  const d = await requireDeployment(executionId);
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
