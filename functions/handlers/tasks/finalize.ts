import { z } from 'zod';
import { failedOutcome, orderedStages } from '../../domain/deployment.ts';
import { environmentsUpTo } from '../../domain/environments.ts';
import { requireDeployment, setDeploymentStatus, updateStage } from '../../lib/deployments.ts';
import { releaseLocks } from '../../lib/locks.ts';
import { notifyUser } from '../../lib/notify.ts';
import { caughtErrorSchema, describeCaughtError, executionIdSchema, taskHandler } from '../../lib/task.ts';

/**
 * The pipeline's last step: Succeeded, or on failure Failed / RolledBack. A stage still Running
 * (it crashed rather than rejecting) is marked Failed with the error, so no stage is left open.
 */
export const handler = taskHandler(
  z.object({ executionId: executionIdSchema, outcome: z.enum(['Succeeded', 'Failed']), error: caughtErrorSchema.optional() }),
  async ({ executionId, outcome, error }) => {
    // Release the locks and tell the requester how it ended.
    const release = async () => {
      const d = await requireDeployment(executionId);
      await releaseLocks(d.moduleName, environmentsUpTo(d.targetEnvironment), executionId);
      await notifyUser(
        d.requestedBy,
        `${d.moduleName}@${d.version} to ${d.targetEnvironment}: ${d.status}`,
        [
          `Deployment ${executionId} of ${d.moduleName}@${d.version} to ${d.targetEnvironment} ended ${d.status}.`,
          ...(d.failure ? [`${d.failure.stage ?? ''}: ${d.failure.message}`] : []),
        ].join('\n'),
      );
    };
    if (outcome === 'Succeeded') {
      await setDeploymentStatus(executionId, 'Succeeded');
      await release();
      return { status: 'Succeeded' };
    }
    const cause = describeCaughtError(error);
    let d = await requireDeployment(executionId);
    for (const s of orderedStages(d)) {
      if (s.status !== 'Running') continue;
      await updateStage(
        executionId,
        s.name,
        { status: 'Failed', finishedAt: new Date().toISOString(), message: cause.message },
        {
          failure: { stage: s.name, code: cause.code, message: cause.message },
        },
      );
    }
    d = await requireDeployment(executionId);
    const status = failedOutcome(orderedStages(d));
    const failedStage = orderedStages(d).find((s) => s.status === 'Failed' || s.status === 'RolledBack');
    await setDeploymentStatus(executionId, status, {
      failure: d.failure ?? { stage: failedStage?.name, code: cause.code, message: cause.message },
    });
    await release();
    return { status };
  },
);
