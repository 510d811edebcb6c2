import { AppError } from '../../domain/errors.ts';
import { agentClient, mapLimit } from '../../lib/agentClient.ts';
import { config } from '../../lib/config.ts';
import { recordStageDetail, requireDeployment } from '../../lib/deployments.ts';
import { environmentInput } from '../../lib/environmentStage.ts';
import { getNodes } from '../../lib/nodes.ts';
import { renewDeploymentLocks } from '../../lib/locks.ts';
import { listBatches } from '../../lib/targets.ts';
import { taskHandler } from '../../lib/task.ts';

/**
 * Blue-Green smoke test: every node of the idle colour runs the module's self-test through its
 * agent, before any traffic moves. The state machine bounds the whole step (default 5 minutes).
 */
export const handler = taskHandler(environmentInput, async ({ executionId, environment }) => {
  const d = await requireDeployment(executionId);
  await renewDeploymentLocks(d, executionId);
  const ids = (await listBatches(executionId, environment)).flatMap((b) => Object.keys(b.nodes));
  const nodes = await getNodes(environment, ids);
  const results = await mapLimit(ids, config.agentConcurrency(), async (nodeId) => {
    const node = nodes.get(nodeId);
    if (!node) throw new Error(`node ${nodeId} is no longer registered`);
    return agentClient.smokeTest(node, d.moduleName);
  });
  const failures = results.flatMap((r, i) => {
    if (r.status === 'rejected') return [`${ids[i]}: ${(r.reason as Error).message}`];
    return r.value.passed
      ? []
      : [
          `${ids[i]}: ${r.value.checks
            .filter((c) => !c.passed)
            .map((c) => `${c.name} (${c.detail})`)
            .join(', ')}`,
        ];
  });
  await recordStageDetail(
    executionId,
    environment,
    'smokeTest',
    { nodes: ids.length, passed: ids.length - failures.length, failures },
    failures.length ? 'smoke-test.failed' : 'smoke-test.passed',
  );
  if (failures.length) throw new AppError('SmokeTestFailed', `smoke tests failed on ${failures.length} of ${ids.length} idle nodes: ${failures.join('; ')}`);
  return { passed: ids.length };
});
