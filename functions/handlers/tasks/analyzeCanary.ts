import { z } from 'zod';
import { averageMetrics, judgeCanary } from '../../domain/canary.ts';
import { AppError } from '../../domain/errors.ts';
import { agentClient, mapLimit } from '../../lib/agentClient.ts';
import { config } from '../../lib/config.ts';
import { recordStageDetail, requireDeployment } from '../../lib/deployments.ts';
import { environmentInput } from '../../lib/environmentStage.ts';
import { renewDeploymentLocks } from '../../lib/locks.ts';
import { getNode, type NodeRecord } from '../../lib/nodes.ts';
import { abortPlan, getBatch, getPlan } from '../../lib/targets.ts';
import { taskHandler } from '../../lib/task.ts';

/** Canary nodes sampled per analysis: enough for a stable average, bounded for huge waves. */
const CANARY_SAMPLE = 200;

/**
 * After a wave has baked: compare every canary node so far (this wave and earlier ones) against
 * the pre-deployment baseline. A failed judgement fails the wave, with the numbers, and the state
 * machine rolls back every canary node.
 */
export const handler = taskHandler(environmentInput.extend({ wave: z.number().int().min(0) }), async ({ executionId, environment, wave }) => {
  const d = await requireDeployment(executionId);
  await renewDeploymentLocks(d, executionId);
  const plan = await getPlan(executionId, environment);
  if (!plan?.waves || !plan.baseline) throw new AppError('PlanMismatch', `${environment} has no canary plan for ${executionId}`);
  const batchNumbers = plan.waves.slice(0, wave + 1).flat();
  const ids = (await Promise.all(batchNumbers.map((b) => getBatch(executionId, environment, b)))).flatMap((b) => Object.keys(b.nodes));
  const sample = ids.slice(-CANARY_SAMPLE);
  const reports = await mapLimit(sample, config.agentConcurrency(), async (nodeId) => agentClient.metrics((await getNode(environment, nodeId)) as NodeRecord));
  const ok = reports.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const unreachable = sample.length - ok.length;
  const canary = averageMetrics(ok);
  const verdict = judgeCanary(plan.baseline, canary, config.canaryThresholds(), config.canaryMinimumDeltas());
  const percent = config.canaryWaves()[wave] ?? 100;
  const passed = verdict.ok && unreachable === 0;
  const result = {
    wave: wave + 1,
    percent,
    nodes: ids.length,
    passed,
    baseline: plan.baseline,
    canary,
    checks: verdict.checks.map((c) => ({ ...c, changePercent: Number.isFinite(c.changePercent) ? c.changePercent : null })),
    summary: unreachable ? `${unreachable} canary node(s) did not report metrics; ${verdict.summary}` : verdict.summary,
    at: new Date().toISOString(),
  };
  await recordStageDetail(executionId, environment, `wave${wave + 1}`, result, passed ? 'canary.wave.passed' : 'canary.wave.failed');
  if (!passed) {
    const message = `canary wave ${wave + 1} (${percent}% of nodes, ${ids.length} nodes) failed analysis against the baseline: ${result.summary}`;
    await abortPlan(executionId, environment, message);
    throw new AppError('CanaryAnalysisFailed', message);
  }
  return { wave: wave + 1, passed: true };
});
