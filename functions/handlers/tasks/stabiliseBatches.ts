import { z } from 'zod';
import { AppError } from '../../domain/errors.ts';
import { agentClient, mapLimit } from '../../lib/agentClient.ts';
import { config } from '../../lib/config.ts';
import { recordStageDetail, requireDeployment } from '../../lib/deployments.ts';
import { environmentInput } from '../../lib/environmentStage.ts';
import { renewDeploymentLocks } from '../../lib/locks.ts';
import { getNodes } from '../../lib/nodes.ts';
import { pollStability, stabilisationDetail, stabilisationStateSchema } from '../../lib/stabilisation.ts';
import { getBatch, getPlan } from '../../lib/targets.ts';
import { taskHandler } from '../../lib/task.ts';

/** Nodes polled per call: enough for a stable average, bounded for huge environments. */
const SAMPLE_NODES = 200;
/** Batches read to find them when the whole environment stabilises (Direct, Blue-Green). */
const SAMPLE_BATCHES = 4;
/**
 * Batches health-checked per VerifyBatch call after an environment-wide stabilisation: two, so a
 * batch costs 7 + 3.5 history events (deploy iteration + half a verify iteration) instead of the
 * 12 of one deploy-and-verify iteration (test/integration/scale.test.ts pins the bound).
 */
export const VERIFY_BATCHES_PER_CALL = 2;

/** Up to `count` batch numbers spread evenly over 0 … batchCount − 1, first and last included. */
export function spreadBatches(batchCount: number, count: number): number[] {
  if (batchCount <= count) return Array.from({ length: batchCount }, (_, i) => i);
  return [...new Set(Array.from({ length: count }, (_, i) => Math.round((i * (batchCount - 1)) / (count - 1))))];
}

export function verifyGroups(batchCount: number, size = VERIFY_BATCHES_PER_CALL): number[][] {
  const groups: number[][] = [];
  for (let b = 0; b < batchCount; b += size) groups.push(Array.from({ length: Math.min(size, batchCount - b) }, (_, i) => b + i));
  return groups;
}

/**
 * Adaptive stabilisation before the post-batch health checks of Direct, Rolling and Blue-Green
 * (docs/adr/0023-adaptive-stabilisation.md): polls the deployed nodes' metrics (one batch, or a
 * sample spread over every batch of the environment) and asks to wait until they are stable,
 * bounded by STABILISE_MIN_SECONDS and STABILISE_MAX_SECONDS. Once the wait is over the stage
 * shows how long it took, and the health checks judge (moving metrics are not a failure here:
 * the health thresholds are).
 */
export const handler = taskHandler(
  environmentInput.extend({ batch: z.number().int().min(0).optional(), stabilisation: stabilisationStateSchema.nullable().optional() }),
  async ({ executionId, environment, batch, stabilisation }) => {
    const d = await requireDeployment(executionId);
    const plan = await getPlan(executionId, environment);
    if (!plan) throw new AppError('PlanMismatch', `${environment} has no plan for ${executionId}`);
    if (plan.abortedAt) throw new AppError('EnvironmentAborted', `${environment} was aborted (${plan.abortReason})`);
    const batches = batch === undefined ? spreadBatches(plan.batchCount, SAMPLE_BATCHES) : [batch];
    const ids = (await Promise.all(batches.map((b) => getBatch(executionId, environment, b)))).flatMap((b) => Object.keys(b.nodes)).slice(0, SAMPLE_NODES);
    const nodes = await getNodes(environment, ids);
    const reports = await mapLimit(ids, config.agentConcurrency(), async (nodeId) => {
      const node = nodes.get(nodeId);
      if (!node) throw new Error(`${nodeId}: no longer registered`);
      return agentClient.metrics(node);
    });
    // Nodes that do not answer are left to the health check, which fails them by name.
    const ok = reports.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const settled = pollStability(stabilisation, ok);
    await renewDeploymentLocks(d, executionId, { bakeSeconds: settled.action === 'wait' ? settled.waitSeconds : 0 });
    if (settled.action === 'wait') return { action: 'wait', waitSeconds: settled.waitSeconds, stabilisation: settled.state };
    const detail = {
      ...(batch === undefined ? { batches: plan.batchCount } : { batch: batch + 1, of: plan.batchCount }),
      ...stabilisationDetail(settled),
      nodesPolled: ok.length,
      summary: settled.stable
        ? `metrics stable after ${settled.waitedSeconds} s`
        : `metrics not stable after ${settled.waitedSeconds} s (${settled.unstable.join(', ')} still moving); health checks judge`,
      at: new Date().toISOString(),
    };
    await recordStageDetail(executionId, environment, 'stabilisation', detail, settled.stable ? 'stabilisation.stable' : 'stabilisation.unstable');
    return { action: 'judged', ...(batch === undefined ? { groups: verifyGroups(plan.batchCount) } : {}) };
  },
);
