import { z } from 'zod';
import { expireApproval, getApproval } from '../../lib/approvals.ts';
import { updateStage } from '../../lib/deployments.ts';
import { caughtErrorSchema, describeCaughtError, executionIdSchema, taskHandler } from '../../lib/task.ts';

/**
 * An approval gate closed without approval: rejected by an approver, or timed out (the state
 * machine's own task timeout). The environment's stage fails with the reason; no node of it (or
 * of any later environment) was touched.
 */
export const handler = taskHandler(
  z.object({ executionId: executionIdSchema, environment: z.enum(['Staging', 'Production']), error: caughtErrorSchema }),
  async ({ executionId, environment, error }) => {
    const a = await getApproval(executionId, environment);
    let code: string;
    let message: string;
    if (error.Error === 'States.Timeout') {
      if (a?.status === 'Pending') await expireApproval(a, 'system:pipeline');
      code = 'ApprovalExpired';
      message = `approval expired: nobody approved before ${a?.deadline ?? 'the deadline'}`;
    } else if (error.Error === 'ApprovalRejected') {
      code = 'ApprovalRejected';
      message = `approval ${error.Cause ?? 'rejected'}`;
    } else {
      ({ code, message } = describeCaughtError(error));
      message = `approval gate failed: ${message}`;
    }
    await updateStage(
      executionId,
      environment,
      { status: 'Failed', finishedAt: new Date().toISOString(), message },
      { failure: { stage: environment, code, message } },
    );
    return { Error: code, Cause: message };
  },
);
