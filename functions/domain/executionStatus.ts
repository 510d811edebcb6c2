/**
 * Step Functions announces the end of every execution as an EventBridge "Step Functions Execution
 * Status Change" event. The pipeline and rollback executions settle their own deployment when they
 * end normally; one that FAILED outside that path, TIMED_OUT or was ABORTED (stopped from outside:
 * `aws stepfunctions stop-execution`, the console) leaves its deployment for the reconciler to
 * settle. This is the plain part: what such an end means for the deployment.
 */
import { z } from 'zod';

export const EXECUTION_STATUS_CHANGE = 'Step Functions Execution Status Change';
export const EXECUTION_STATUSES = ['RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABORTED'] as const;
/** The ends the reconciler is told about. */
export const DEAD_EXECUTION_STATUSES = ['FAILED', 'TIMED_OUT', 'ABORTED'] as const;
export type DeadExecutionStatus = (typeof DEAD_EXECUTION_STATUSES)[number];

/** The event as EventBridge delivers it to a Lambda target (the fields the reconciler reads). */
export const executionStatusChangeSchema = z.object({
  source: z.literal('aws.states'),
  'detail-type': z.literal(EXECUTION_STATUS_CHANGE),
  detail: z.object({
    executionArn: z.string().min(1),
    stateMachineArn: z.string().min(1),
    name: z.string().min(1),
    status: z.enum(EXECUTION_STATUSES),
    input: z.string().nullish(),
    error: z.string().nullish(),
    cause: z.string().nullish(),
    stopDate: z.number().nullish(),
  }),
});
export type ExecutionStatusChange = z.infer<typeof executionStatusChangeSchema>;

export interface Settlement {
  /** An execution stopped from outside cancels its deployment; any other death fails it. */
  deploymentStatus: 'Cancelled' | 'Failed';
  code: string;
  message: string;
}

/** What a dead execution means for its deployment (or its rollback), with the reason. */
export function settlementOf(status: DeadExecutionStatus, error?: string | null, cause?: string | null): Settlement {
  const why = [error, cause].filter((s): s is string => Boolean(s)).join(': ');
  switch (status) {
    case 'ABORTED':
      return { deploymentStatus: 'Cancelled', code: 'ExecutionAborted', message: `its execution was stopped${why ? ` (${why})` : ''}` };
    case 'TIMED_OUT':
      return { deploymentStatus: 'Failed', code: 'ExecutionTimedOut', message: `its execution timed out${why ? ` (${why})` : ''}` };
    case 'FAILED':
      return { deploymentStatus: 'Failed', code: error || 'ExecutionFailed', message: `its execution failed${why ? ` (${why})` : ''}` };
  }
}

const DEPLOYMENT_ID = /^dep-[a-z0-9]{9}-[a-f0-9]{12}$/;
const NAMED_AFTER_DEPLOYMENT = /^dep-[a-z0-9]{9}-[a-f0-9]{12}(?=$|-)/;

/**
 * The deployment an execution works for: its input's `executionId` (every pipeline and rollback
 * input carries it), or the start of its name (a pipeline is named after the deployment, a
 * rollback `<deployment>-rollback-…`) when the input is missing or unreadable.
 */
export function deploymentIdOf(name: string, input?: string | null): string | undefined {
  try {
    const id = (JSON.parse(input ?? '') as { executionId?: unknown }).executionId;
    if (typeof id === 'string' && DEPLOYMENT_ID.test(id)) return id;
  } catch {
    /* fall back to the name */
  }
  return NAMED_AFTER_DEPLOYMENT.exec(name)?.[0];
}
