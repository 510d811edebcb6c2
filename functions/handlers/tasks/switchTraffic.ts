import { misaligned, servedByColour, switchBackUntil } from '../../domain/blueGreen.ts';
import { config } from '../../lib/config.ts';
import { AppError } from '../../domain/errors.ts';
import { recordStageDetail, requireDeployment } from '../../lib/deployments.ts';
import { environmentInput } from '../../lib/environmentStage.ts';
import { listNodes } from '../../lib/nodes.ts';
import { getPlan, listBatches, markTrafficSwitched } from '../../lib/targets.ts';
import { taskHandler } from '../../lib/task.ts';
import { trafficRouter } from '../../lib/trafficRouter.ts';

/**
 * Blue-Green: move all traffic to the freshly deployed colour; the old colour stays as it was, and
 * the stage records until when an instant switch-back is guaranteed (BLUE_GREEN_SWITCH_BACK_SECONDS).
 * Only when the switch changes nothing but this deployment's module: the live colour must still be
 * the one planned (no other deployment switched meanwhile), and every deployed idle node must carry
 * every other module at the version the live colour serves (DeployBatch aligned them). Otherwise
 * the stage fails and rolls back with traffic where it was.
 */
export const handler = taskHandler(environmentInput, async ({ executionId, environment }) => {
  const d = await requireDeployment(executionId);
  const plan = await getPlan(executionId, environment);
  if (!plan?.idleColour || !plan.activeColour) throw new AppError('PlanMismatch', `${environment} has no blue-green plan for ${executionId}`);
  const router = trafficRouter(environment);
  const live = await router.activeColour(environment);
  // A retry after the switch: the traffic is already where this task put it.
  const retried = plan.trafficSwitched && live === plan.idleColour;
  if (!retried && live !== plan.activeColour) {
    throw new AppError(
      'TrafficMoved',
      `${environment}'s traffic moved to ${live} since this deployment planned (it deployed to ${plan.idleColour}): not switching`,
    );
  }
  const deployed = new Set((await listBatches(executionId, environment)).flatMap((b) => Object.keys(b.nodes)));
  const nodes = await listNodes(environment);
  const served = servedByColour(nodes, plan.activeColour, d.moduleName);
  const off = misaligned(
    nodes.filter((n) => deployed.has(n.nodeId)),
    plan.idleColour,
    served.versions,
  );
  if (!retried && Object.keys(off).length) {
    const what = Object.entries(off).map(
      ([id, a]) => `${id}: ${Object.entries(a).map(([m, c]) => `${m} ${c.from ?? 'none'} (live serves ${c.to ?? 'none'})`)}`,
    );
    throw new AppError(
      'IdleColourMisaligned',
      `the ${plan.idleColour} colour does not carry what ${plan.activeColour} serves, so switching would change other modules: ${what.join('; ')}`,
    );
  }
  // Mark first: if the switch half-happens and this task dies, rollback still switches back.
  await markTrafficSwitched(executionId, environment, true);
  await router.switchTo(environment, plan.idleColour, executionId);
  const at = new Date();
  const switchBackSeconds = config.blueGreenSwitchBackSeconds();
  await recordStageDetail(
    executionId,
    environment,
    'traffic',
    // The audit says what the switch changed: this module only; the others are served as before.
    // Until when a rollback switches back to a colour guaranteed to serve as before (instant switch-back).
    {
      from: plan.activeColour,
      to: plan.idleColour,
      at: at.toISOString(),
      module: d.moduleName,
      version: d.version,
      unchanged: served.versions,
      switchBackSeconds,
      switchBackUntil: switchBackUntil(at, switchBackSeconds),
    },
    'traffic.switched',
  );
  return { activeColour: plan.idleColour, standbyColour: plan.activeColour };
});
