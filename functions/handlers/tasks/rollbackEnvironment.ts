import { z } from 'zod';
import { agentClient, mapLimit } from '../../lib/agentClient.ts';
import { config } from '../../lib/config.ts';
import { requireDeployment, updateStage } from '../../lib/deployments.ts';
import { environmentInput } from '../../lib/environmentStage.ts';
import { getNode, recordNodeModule } from '../../lib/nodes.ts';
import { abortPlan, getPlan, listBatches, markTrafficSwitched, setBatchNodes, type NodeTarget } from '../../lib/targets.ts';
import { caughtErrorSchema, describeCaughtError, taskHandler } from '../../lib/task.ts';
import { trafficRouter } from '../../lib/trafficRouter.ts';

/**
 * Roll back what this deployment changed in one environment: traffic first (blue-green switches
 * back to the colour that served before), then every node back to the version it ran before (or
 * the module unloaded if it had none). Used by the automatic rollback of every strategy and by
 * rollback on demand. Idempotent: rolled-back nodes are skipped, and the agent treats a repeated
 * rollback id as a replay. A node that a later deployment has changed since is left alone.
 */
export const handler = taskHandler(
  environmentInput.extend({ error: caughtErrorSchema.optional(), requestedBy: z.string().optional() }),
  async ({ executionId, environment, error, requestedBy }) => {
    const d = await requireDeployment(executionId);
    const onDemand = requestedBy !== undefined;
    const failure = describeCaughtError(error);
    // An environment that had succeeded is rolled back because a later one failed.
    const cascaded = !onDemand && d.stages[environment]?.status === 'Succeeded';
    const cause = onDemand
      ? { code: 'RollbackRequested', message: `rollback requested by ${requestedBy}` }
      : cascaded
        ? { code: failure.code, message: `rolled back because a later stage failed (${failure.message})` }
        : failure;
    const notes: string[] = [];
    await abortPlan(executionId, environment, cause.message);
    const plan = await getPlan(executionId, environment);
    if (plan?.trafficSwitched && plan.activeColour) {
      await trafficRouter().switchTo(environment, plan.activeColour, `${executionId}:rollback`);
      await markTrafficSwitched(executionId, environment, false);
      notes.push(`traffic switched back to ${plan.activeColour}`);
    }
    let rolledBack = 0;
    const stuck: string[] = [];
    const skipped: string[] = [];
    // A batch already in flight when the environment was aborted may still record deployed nodes:
    // keep passing over the ledger until no batch is in flight (bounded by the agent timeout).
    const deadline = Date.now() + 2 * config.agentTimeoutMs() + 30_000;
    for (let pass = 0; ; pass++) {
      const batches = await listBatches(executionId, environment);
      for (const batch of batches) {
        const ids = Object.keys(batch.nodes).filter(
          (id) => batch.nodes[id].status === 'Deployed' || (pass === 0 && batch.nodes[id].status === 'RollbackFailed'),
        );
        if (ids.length === 0) continue;
        const outcomes = await mapLimit(ids, config.agentConcurrency(), async (nodeId): Promise<NodeTarget> => {
          const target = batch.nodes[nodeId];
          const node = await getNode(environment, nodeId);
          if (!node) throw new Error(`node ${nodeId} is no longer registered`);
          const running = node.modules?.[d.moduleName]?.version ?? null;
          if (running !== d.version) {
            skipped.push(`${nodeId} (now runs ${running ?? 'no version'})`);
            return { ...target, status: 'RolledBack', message: `left alone: now runs ${running ?? 'no version'}` };
          }
          const r = await agentClient.rollback(node, d.moduleName, { deploymentId: `${executionId}:rollback`, toVersion: target.previousVersion });
          await recordNodeModule(environment, nodeId, d.moduleName, r.version, d.version);
          rolledBack++;
          return { ...target, status: 'RolledBack' };
        });
        const nodes = { ...batch.nodes };
        ids.forEach((id, i) => {
          const o = outcomes[i];
          if (o.status === 'fulfilled') nodes[id] = o.value;
          else {
            nodes[id] = { ...nodes[id], status: 'RollbackFailed', message: (o.reason as Error).message };
            stuck.push(`${id}: ${(o.reason as Error).message}`);
          }
        });
        await setBatchNodes(batch, nodes);
      }
      const inFlight = batches.some((b) => b.startedAt && !b.countedAt);
      if (!inFlight || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    notes.push(`rolled back ${rolledBack} node(s) to their previous version`);
    // The stage's count comes from the ledger, so a retried rollback neither loses nor doubles nodes.
    const totalRolledBack = (await listBatches(executionId, environment))
      .flatMap((b) => Object.values(b.nodes))
      .filter((n) => n.status === 'RolledBack' && !n.message?.startsWith('left alone')).length;
    if (skipped.length) notes.push(`left ${skipped.length} node(s) changed since: ${skipped.join(', ')}`);
    const stage = d.stages[environment];
    const finishedAt = new Date().toISOString();
    await updateStage(
      executionId,
      environment,
      {
        status: stuck.length ? 'Failed' : 'RolledBack',
        finishedAt,
        durationMs: stage?.startedAt ? Date.parse(finishedAt) - Date.parse(stage.startedAt) : undefined,
        nodesRolledBack: totalRolledBack,
        message: [cause.message, ...notes, ...(stuck.length ? [`rollback FAILED on ${stuck.join('; ')}`] : [])].join('; '),
      },
      onDemand || cascaded ? { actor: requestedBy } : { failure: { stage: environment, code: cause.code, message: cause.message } },
    );
    return { environment, rolledBack, rollbackFailed: stuck.length, cause: cause.message };
  },
);
