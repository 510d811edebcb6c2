import { z } from 'zod';
import { StageRejection } from '../../domain/errors.ts';
import { judgeNodeHealth } from '../../domain/health.ts';
import { agentClient, mapLimit } from '../../lib/agentClient.ts';
import { config, healthThresholds } from '../../lib/config.ts';
import { listNodes, recordNodeHealthBatch } from '../../lib/nodes.ts';
import { runStage } from '../../lib/stages.ts';
import { targetedNodeIds } from '../../lib/changes.ts';
import { executionIdSchema, taskHandler } from '../../lib/task.ts';

/** Validation: the final health of every node in every environment this deployment touched. */
export const handler = taskHandler(z.object({ executionId: executionIdSchema }), ({ executionId }) =>
  runStage(executionId, 'Validation', async (d) => {
    const envs = d.stageOrder.filter((s) => d.stages[s]?.kind === 'environment').map((s) => d.stages[s].environment!);
    const thresholds = healthThresholds();
    const problems: string[] = [];
    let checked = 0;
    for (const env of envs) {
      // The nodes this deployment targeted: all of them, or the now-live colour of a blue-green environment.
      const targeted = new Set(await targetedNodeIds(executionId, env));
      const nodes = (await listNodes(env)).filter((n) => targeted.has(n.nodeId));
      const answers = await mapLimit(nodes, config.agentConcurrency(), (n) => agentClient.health(n));
      // Every report recorded, in a transaction per 100 nodes (lib/nodes.ts recordNodeHealthBatch).
      const answered = nodes.flatMap((n, i) => {
        const a = answers[i];
        return a.status === 'fulfilled' ? [{ node: n, health: a.value }] : [];
      });
      const recorded = new Map((await recordNodeHealthBatch(answered)).map((r, i) => [answered[i].node.nodeId, r]));
      answers.forEach((a, i) => {
        checked++;
        const r = recorded.get(nodes[i].nodeId);
        const issues =
          a.status === 'rejected'
            ? [(a.reason as Error).message]
            : r?.status === 'rejected'
              ? [(r.reason as Error).message]
              : judgeNodeHealth(a.value, { module: d.moduleName, version: d.version }, thresholds);
        for (const p of issues) problems.push(`${env}/${nodes[i].nodeId}: ${p}`);
      });
    }
    if (problems.length) throw new StageRejection('ValidationFailed', `final validation failed: ${problems.join('; ')}`);
    return { message: `${checked} nodes in ${envs.join(', ')} healthy on ${d.moduleName}@${d.version}`, details: { nodesChecked: checked } };
  }),
);
