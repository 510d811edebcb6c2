import { z } from 'zod';
import { averagesOf, baselineAverages, baselineSampleSet, judgeWave, presentJudgement, sampleSetOf } from '../../domain/canary.ts';
import { recordWaveSamples } from '../../lib/canarySamples.ts';
import { AppError } from '../../domain/errors.ts';
import { agentClient, mapLimit } from '../../lib/agentClient.ts';
import { config } from '../../lib/config.ts';
import { recordStageDetail, requireDeployment } from '../../lib/deployments.ts';
import { counterIncrement } from '../../lib/metrics.ts';
import { environmentInput } from '../../lib/environmentStage.ts';
import { renewDeploymentLocks } from '../../lib/locks.ts';
import { getNode, type NodeRecord } from '../../lib/nodes.ts';
import { abortPlan, getBatch, getPlan } from '../../lib/targets.ts';
import { taskHandler } from '../../lib/task.ts';
import { pollStability, stabilisationDetail, stabilisationStateSchema } from '../../lib/stabilisation.ts';

/** Canary nodes sampled per analysis: enough for a stable average, bounded for huge waves. */
const CANARY_SAMPLE = 200;

/**
 * After a wave has baked: judge every canary node so far (this wave and earlier ones) against the
 * pre-deployment baseline (domain/canary.ts judgeWave: thresholds, a rank test per metric, and
 * each node on its own, so one bad node is named rather than averaged away). The samples are
 * recorded for rejudge. A failed judgement fails the wave, with the numbers, and the state machine
 * rolls back every canary node.
 */
export const handler = taskHandler(
  environmentInput.extend({ wave: z.number().int().min(0), stabilisation: stabilisationStateSchema.nullable().optional() }),
  async ({ executionId, environment, wave, stabilisation }) => {
    const d = await requireDeployment(executionId);
    const plan = await getPlan(executionId, environment);
    if (!plan?.waves || !plan.baseline) throw new AppError('PlanMismatch', `${environment} has no canary plan for ${executionId}`);
    const batchNumbers = plan.waves.slice(0, wave + 1).flat();
    const ids = (await Promise.all(batchNumbers.map((b) => getBatch(executionId, environment, b)))).flatMap((b) => Object.keys(b.nodes));
    const sample = ids.slice(-CANARY_SAMPLE);
    const reports = await mapLimit(sample, config.agentConcurrency(), async (nodeId) =>
      agentClient.metrics((await getNode(environment, nodeId)) as NodeRecord),
    );
    const ok = reports.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const unreachable = sample.length - ok.length;
    // Adaptive stabilisation: poll (the state machine waits between calls) until the wave's metrics stop moving.
    const settled = pollStability(stabilisation, ok);
    await renewDeploymentLocks(d, executionId, { bakeSeconds: settled.action === 'wait' ? settled.waitSeconds : 0 });
    if (settled.action === 'wait') return { action: 'wait', waitSeconds: settled.waitSeconds, stabilisation: settled.state };
    const samples = sampleSetOf(ok);
    const confidence = config.canaryConfidence();
    const judgement = judgeWave(baselineSampleSet(plan.baseline), samples, {
      thresholds: config.canaryThresholds(),
      minimum: config.canaryMinimumDeltas(),
      confidence,
    });
    const percent = config.canaryWaves()[wave] ?? 100;
    const passed = judgement.ok && unreachable === 0;
    // Kept before the verdict is recorded, so whatever the stage shows can be judged again (rejudge).
    await recordWaveSamples(executionId, environment, { wave: wave + 1, percent, judgedAt: new Date().toISOString(), samples });
    const presented = presentJudgement(judgement);
    const result = {
      wave: wave + 1,
      percent,
      nodes: ids.length,
      ...presented,
      passed,
      confidence,
      stabilisation: stabilisationDetail(settled),
      baseline: baselineAverages(plan.baseline),
      canary: averagesOf(samples),
      summary:
        (unreachable ? `${unreachable} canary node(s) did not report metrics; ` : '') +
        (settled.stable ? '' : `metrics not stable after ${settled.waitedSeconds} s (${settled.unstable.join(', ')} still moving); `) +
        judgement.summary,
      at: new Date().toISOString(),
    };
    await recordStageDetail(executionId, environment, `wave${wave + 1}`, result, passed ? 'canary.wave.passed' : 'canary.wave.failed', {
      countFirst: counterIncrement('kmod_canary_verdicts_total', { environment, verdict: passed ? 'passed' : 'failed' }),
    });
    if (!passed) {
      const message = `canary wave ${wave + 1} (${percent}% of nodes, ${ids.length} nodes) failed analysis against the baseline: ${result.summary}`;
      await abortPlan(executionId, environment, message);
      throw new AppError('CanaryAnalysisFailed', message);
    }
    return { action: 'judged', wave: wave + 1, passed: true };
  },
);
