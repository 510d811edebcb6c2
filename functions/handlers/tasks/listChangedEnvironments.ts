import { z } from 'zod';
import { changedEnvironments } from '../../lib/changes.ts';
import { requireDeployment } from '../../lib/deployments.ts';
import { executionIdSchema, taskHandler } from '../../lib/task.ts';

/** For the pipeline's failure path: which environments still carry this deployment's changes. */
export const handler = taskHandler(z.object({ executionId: executionIdSchema }), async ({ executionId }) => ({
  environments: await changedEnvironments(await requireDeployment(executionId)),
}));
