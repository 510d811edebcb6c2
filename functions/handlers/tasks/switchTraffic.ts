import { AppError } from '../../domain/errors.ts';
import { recordStageDetail } from '../../lib/deployments.ts';
import { environmentInput } from '../../lib/environmentStage.ts';
import { getPlan, markTrafficSwitched } from '../../lib/targets.ts';
import { taskHandler } from '../../lib/task.ts';
import { trafficRouter } from '../../lib/trafficRouter.ts';

/** Blue-Green: move all traffic to the freshly deployed colour; the old colour stays as it was. */
export const handler = taskHandler(environmentInput, async ({ executionId, environment }) => {
  const plan = await getPlan(executionId, environment);
  if (!plan?.idleColour || !plan.activeColour) throw new AppError('PlanMismatch', `${environment} has no blue-green plan for ${executionId}`);
  // Mark first: if the switch half-happens and this task dies, rollback still switches back.
  await markTrafficSwitched(executionId, environment, true);
  await trafficRouter().switchTo(environment, plan.idleColour, executionId);
  await recordStageDetail(
    executionId,
    environment,
    'traffic',
    { from: plan.activeColour, to: plan.idleColour, at: new Date().toISOString() },
    'traffic.switched',
  );
  return { activeColour: plan.idleColour, standbyColour: plan.activeColour };
});
