import { AppError } from '../../domain/errors.ts';
import { judgeNodeHealth } from '../../domain/health.ts';
import { agentClient, mapLimit } from '../../lib/agentClient.ts';
import { config, healthThresholds } from '../../lib/config.ts';
import { recordStageDetail, requireDeployment } from '../../lib/deployments.ts';
import { firedAlarms, hasAlarms } from '../../lib/alarms.ts';
import type { MetricsReport } from '../../agent/protocol.ts';
import { z } from 'zod';
import { environmentInput } from '../../lib/environmentStage.ts';
import { getNodes } from '../../lib/nodes.ts';
import { renewDeploymentLocks } from '../../lib/locks.ts';
import { abortPlan, getBatch, getPlan } from '../../lib/targets.ts';
import { taskHandler } from '../../lib/task.ts';

/**
 * Health check of one deployed batch (or a few, after an environment-wide stabilisation): every node healthy, within thresholds, on the new version.
 * (Not written to the Nodes table: one write per node would double a deployment's writes; the
 * final Validation stage and the cluster endpoints record health.)
 */
const verifyInput = environmentInput
  .extend({ batch: z.number().int().min(0).optional(), batches: z.array(z.number().int().min(0)).min(1).max(10).optional() })
  .refine((i) => (i.batch === undefined) !== (i.batches === undefined), { message: 'give either batch or batches' });

export const handler = taskHandler(verifyInput, async ({ executionId, environment, batch: one, batches }) => {
  const numbers = batches ?? [one as number];
  const batch = numbers.join(', ');
  const d = await requireDeployment(executionId);
  // A canary wave's last check leads into the bake: the lease covers it.
  const plan = await getPlan(executionId, environment);
  await renewDeploymentLocks(d, executionId, { bakeSeconds: plan?.waves ? config.canaryBakeSeconds() : undefined });
  const ids = (await Promise.all(numbers.map((b) => getBatch(executionId, environment, b)))).flatMap((item) => Object.keys(item.nodes));
  const nodes = await getNodes(environment, ids);
  const thresholds = healthThresholds();
  const reports: MetricsReport[] = [];
  const results = await mapLimit(ids, config.agentConcurrency(), async (nodeId) => {
    const node = nodes.get(nodeId);
    if (!node) return [`${nodeId}: no longer registered`];
    const report = await agentClient.health(node);
    reports.push(report.metrics);
    return judgeNodeHealth(report, { module: d.moduleName, version: d.version }, thresholds).map((p) => `${nodeId}: ${p}`);
  });
  const problems = results.flatMap((r, i) => (r.status === 'fulfilled' ? r.value : [`${ids[i]}: ${(r.reason as Error).message}`]));
  if (problems.length) {
    const message = `batch${numbers.length > 1 ? 'es' : ''} ${batch} failed its health check: ${problems.join('; ')}`;
    await abortPlan(executionId, environment, message);
    throw new AppError('UnhealthyNodes', message);
  }
  // Alarm-driven stop: an alarm of the environment firing in the health window stops and rolls back
  // (a canary's alarms are watched through its bakes, by CanaryGate).
  const fired = !plan?.waves && hasAlarms(environment) ? await firedAlarms(environment, reports) : [];
  if (fired.length) {
    const message = `${fired.map((f) => f.message).join('; ')} during the health check of batch${numbers.length > 1 ? 'es' : ''} ${batch}`;
    await recordStageDetail(executionId, environment, 'alarm', { batches: numbers, fired, at: new Date().toISOString() }, 'deployment.alarm.fired');
    await abortPlan(executionId, environment, message);
    throw new AppError('AlarmFired', message);
  }
  return { batches: numbers, healthy: ids.length };
});
