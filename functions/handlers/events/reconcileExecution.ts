import { DEAD_EXECUTION_STATUSES, deploymentIdOf, executionStatusChangeSchema, settlementOf, type DeadExecutionStatus } from '../../domain/executionStatus.ts';
import { config } from '../../lib/config.ts';
import { settleDeadPipeline, settleDeadRollback } from '../../lib/reconcile.ts';
import { taskHandler } from '../../lib/task.ts';
import { logger } from '../../lib/telemetry.ts';

const isDead = (status: string): status is DeadExecutionStatus => (DEAD_EXECUTION_STATUSES as readonly string[]).includes(status);

/**
 * EventBridge target of the pipeline's and the rollback's "Step Functions Execution Status Change"
 * events (FAILED, TIMED_OUT, ABORTED; the local cloud sends the same events): a deployment whose
 * execution died is settled, its locks released, audited (lib/reconcile.ts). Idempotent: an
 * execution that had settled its deployment itself, or a repeated event, changes nothing.
 */
export const handler = taskHandler(executionStatusChangeSchema, async ({ detail }) => {
  if (!isDead(detail.status)) return { action: 'ignored', reason: `the execution is ${detail.status}` };
  const executionId = deploymentIdOf(detail.name, detail.input);
  if (!executionId) return { action: 'ignored', reason: 'the execution names no deployment' };
  logger.appendKeys({ executionId });
  const settlement = settlementOf(detail.status, detail.error, detail.cause);
  const execution = { executionArn: detail.executionArn, name: detail.name, status: detail.status };
  const outcome =
    detail.stateMachineArn === config.pipelineStateMachineArn()
      ? await settleDeadPipeline(executionId, execution, settlement)
      : detail.stateMachineArn === config.rollbackStateMachineArn()
        ? await settleDeadRollback(executionId, execution, settlement)
        : ({ action: 'ignored', reason: 'neither a pipeline nor a rollback execution' } as const);
  logger.info('execution reconciled', { executionArn: detail.executionArn, executionStatus: detail.status, ...outcome });
  return outcome;
});
