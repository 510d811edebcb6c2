import { z } from 'zod';
import { gateDecision } from '../../domain/steering.ts';
import { config } from '../../lib/config.ts';
import { requireDeployment } from '../../lib/deployments.ts';
import { environmentInput } from '../../lib/environmentStage.ts';
import { renewDeploymentLocks } from '../../lib/locks.ts';
import { consumePromotion, liftHold } from '../../lib/steering.ts';
import { taskHandler } from '../../lib/task.ts';
import { evaluateAlarms, type FiredAlarm } from '../../domain/alarms.ts';
import type { Environment } from '../../domain/environments.ts';
import { agentClient, mapLimit } from '../../lib/agentClient.ts';
import { recordStageDetail } from '../../lib/deployments.ts';
import { getNodes, type NodeRecord } from '../../lib/nodes.ts';
import { abortPlan, getBatch, getPlan } from '../../lib/targets.ts';

/**
 * The canary's bake gate after each wave (statemachines/canary.asl.json: StartBake, then CheckBake
 * in a loop with short Waits): reads the deployment's hold and promotion and answers what comes
 * next (domain/steering.ts): wait (bake or hold), judge the wave, skip (promoted to 100 %), or
 * abort (a hold's deadline passed, configured to roll back). The first call starts the bake clock;
 * every call renews the deployment's locks for the wait it leads into, so a long hold keeps them.
 */
/** The environment's alarms (ALARMS) evaluated over the canary nodes so far; none configured, no agent call. */
async function firedAlarms(executionId: string, environment: Environment, wave: number): Promise<FiredAlarm[]> {
  const rules = config.alarms(environment);
  if (rules.length === 0) return [];
  const plan = await getPlan(executionId, environment);
  if (!plan?.waves) return [];
  const batches = await Promise.all(
    plan.waves
      .slice(0, wave + 1)
      .flat()
      .map((b) => getBatch(executionId, environment, b)),
  );
  const ids = batches.flatMap((b) => Object.keys(b.nodes)).slice(-200);
  const nodes = await getNodes(environment, ids);
  const reports = await mapLimit(ids, config.agentConcurrency(), async (nodeId) => agentClient.metrics(nodes.get(nodeId) as NodeRecord));
  return evaluateAlarms(
    rules,
    reports.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : [])),
  );
}

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
    // Alarm-driven stop: an alarm of the environment firing during the bake stops and rolls back.
    if (decision.action === 'wait' || decision.action === 'judge') {
      const fired = await firedAlarms(executionId, environment, wave);
      if (fired.length) {
        const message = `${fired.map((f) => f.message).join('; ')} during the bake of canary wave ${wave + 1}`;
        await recordStageDetail(executionId, environment, 'alarm', { wave: wave + 1, fired, at: now.toISOString() }, 'canary.alarm.fired');
        await abortPlan(executionId, environment, message);
        decision = { action: 'abort', code: 'AlarmFired', message };
      }
    }
    if (decision.action === 'judge' && decision.promoted) await consumePromotion(d, wave);
    await renewDeploymentLocks(d, executionId, { bakeSeconds: decision.action === 'wait' ? decision.waitSeconds : 0 });
    return { ...decision, environment, wave, bakeStartedAt: started };
  },
);
