import { z } from 'zod';
import { gateDecision } from '../../domain/steering.ts';
import { config } from '../../lib/config.ts';
import { requireDeployment } from '../../lib/deployments.ts';
import { environmentInput } from '../../lib/environmentStage.ts';
import { renewDeploymentLocks } from '../../lib/locks.ts';
import { consumePromotion, liftHold } from '../../lib/steering.ts';
import { taskHandler } from '../../lib/task.ts';

/**
 * The canary's bake gate after each wave (statemachines/canary.asl.json: StartBake, then CheckBake
 * in a loop with short Waits): reads the deployment's hold and promotion and answers what comes
 * next (domain/steering.ts): wait (bake or hold), judge the wave, skip (promoted to 100 %), or
 * abort (a hold's deadline passed, configured to roll back). The first call starts the bake clock;
 * every call renews the deployment's locks for the wait it leads into, so a long hold keeps them.
 */
export const handler = taskHandler(
  environmentInput.extend({
    wave: z.number().int().min(0),
    bakeSeconds: z.number().int().min(0),
    bakeStartedAt: z.string().datetime().optional(),
  }),
  async ({ executionId, environment, wave, bakeSeconds, bakeStartedAt }) => {
    const now = new Date();
    const started = bakeStartedAt ?? now.toISOString();
    let d = await requireDeployment(executionId);
    const decide = () =>
      gateDecision({
        now,
        wave,
        bakeStartedAt: new Date(started),
        bakeSeconds,
        pollSeconds: config.canaryPollSeconds(),
        hold: d.hold,
        promotion: d.promotion,
      });
    let decision = decide();
    if (decision.action === 'lift') {
      await liftHold(d, 'system:canary', 'deadline');
      d = await requireDeployment(executionId);
      decision = decide();
      // Paused again meanwhile with a deadline already past: look again after a short wait.
      if (decision.action === 'lift') decision = { action: 'wait', waitSeconds: 1, reason: 'hold' };
    }
    if (decision.action === 'judge' && decision.promoted) await consumePromotion(d, wave);
    await renewDeploymentLocks(d, executionId, { bakeSeconds: decision.action === 'wait' ? decision.waitSeconds : 0 });
    return { ...decision, environment, wave, bakeStartedAt: started };
  },
);
