import { agentClient, mapLimit } from '../../lib/agentClient.ts';
import { config } from '../../lib/config.ts';
import { requireDeployment, updateStage } from '../../lib/deployments.ts';
import { environmentInput } from '../../lib/environmentStage.ts';
import { getNode, recordNodeModule } from '../../lib/nodes.ts';
import { listBatches, setBatchNodes, type NodeTarget } from '../../lib/targets.ts';
import { caughtErrorSchema, describeCaughtError, taskHandler } from '../../lib/task.ts';

/**
 * Automatic rollback of one environment: every node this deployment changed goes back to the
 * version it ran before (or unloads the module if it had none). Idempotent: nodes already rolled
 * back are skipped, and the agent treats a repeated rollback id as a replay.
 */
export const handler = taskHandler(environmentInput.extend({ error: caughtErrorSchema.optional() }), async ({ executionId, environment, error }) => {
  const d = await requireDeployment(executionId);
  const cause = describeCaughtError(error);
  let rolledBack = 0;
  const stuck: string[] = [];
  for (const batch of await listBatches(executionId, environment)) {
    const ids = Object.keys(batch.nodes).filter((id) => ['Deployed', 'RollbackFailed'].includes(batch.nodes[id].status));
    if (ids.length === 0) continue;
    const outcomes = await mapLimit(ids, config.agentConcurrency(), async (nodeId): Promise<NodeTarget> => {
      const target = batch.nodes[nodeId];
      const node = await getNode(environment, nodeId);
      if (!node) throw new Error(`node ${nodeId} is no longer registered`);
      const r = await agentClient.rollback(node, d.moduleName, { deploymentId: `${executionId}:rollback`, toVersion: target.previousVersion });
      await recordNodeModule(environment, nodeId, d.moduleName, r.version, d.version);
      return { ...target, status: 'RolledBack' };
    });
    const nodes = { ...batch.nodes };
    ids.forEach((id, i) => {
      const o = outcomes[i];
      if (o.status === 'fulfilled') {
        nodes[id] = o.value;
        rolledBack++;
      } else {
        nodes[id] = { ...nodes[id], status: 'RollbackFailed', message: (o.reason as Error).message };
        stuck.push(`${id}: ${(o.reason as Error).message}`);
      }
    });
    await setBatchNodes(batch, nodes);
  }
  const stage = d.stages[environment];
  const finishedAt = new Date().toISOString();
  const rolledBackNote = `rolled back ${rolledBack} node(s) to their previous version`;
  await updateStage(
    executionId,
    environment,
    {
      status: stuck.length ? 'Failed' : 'RolledBack',
      finishedAt,
      durationMs: stage?.startedAt ? Date.parse(finishedAt) - Date.parse(stage.startedAt) : undefined,
      nodesRolledBack: rolledBack,
      message: stuck.length ? `${cause.message}; ${rolledBackNote}; rollback FAILED on ${stuck.join('; ')}` : `${cause.message}; ${rolledBackNote}`,
    },
    { failure: { stage: environment, code: cause.code, message: cause.message } },
  );
  return { environment, rolledBack, rollbackFailed: stuck.length, cause: cause.message };
});

