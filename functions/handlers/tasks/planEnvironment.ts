import { AppError, StageRejection } from '../../domain/errors.ts';
import { planBatches } from '../../domain/strategy.ts';
import { config } from '../../lib/config.ts';
import { requireDeployment, updateStage } from '../../lib/deployments.ts';
import { planInput } from '../../lib/environmentStage.ts';
import { listNodes } from '../../lib/nodes.ts';
import { getPlan, writePlan } from '../../lib/targets.ts';
import { taskHandler } from '../../lib/task.ts';

/**
 * Start an environment's stage: snapshot its nodes and what each runs now into batches (the
 * ledger rollback relies on). Returns batch numbers only; state machines carry ids, not payloads.
 */
export const handler = taskHandler(planInput, async ({ executionId, environment, strategy, batchSize }) => {
  const d = await requireDeployment(executionId);
  let plan = await getPlan(executionId, environment);
  if (!plan) {
    const nodes = await listNodes(environment);
    if (nodes.length === 0) {
      const e = new StageRejection('NoNodes', `${environment} has no registered nodes`);
      await updateStage(executionId, environment, { status: 'Failed', message: e.message }, { failure: { stage: environment, code: e.code, message: e.message } });
      throw e;
    }
    const previous = new Map(nodes.map((n) => [n.nodeId, n.modules?.[d.moduleName]?.version ?? null]));
    const size = batchSize ?? config.nodesPerBatch();
    const batches = planBatches(nodes.map((n) => n.nodeId), size).map((ids) => ids.map((nodeId) => ({ nodeId, previousVersion: previous.get(nodeId) ?? null })));
    plan = await writePlan(executionId, environment, strategy, batches);
    await updateStage(executionId, environment, {
      status: 'Running',
      strategy,
      startedAt: new Date().toISOString(),
      nodesTotal: plan.nodesTotal,
      nodesDeployed: 0,
      nodesFailed: 0,
      message: `deploying ${d.moduleName}@${d.version} to ${plan.nodesTotal} nodes in ${plan.batchCount} batches (${strategy})`,
    });
  }
  if (plan.strategy !== strategy) throw new AppError('PlanMismatch', `the plan for ${environment} was made for ${plan.strategy}, not ${strategy}`);
  return { batchCount: plan.batchCount, nodesTotal: plan.nodesTotal, batches: Array.from({ length: plan.batchCount }, (_, i) => i) };
});
