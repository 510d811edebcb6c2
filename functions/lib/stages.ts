import type { DeploymentRecord, StageName, StageRecord } from '../domain/deployment.ts';
import { AppError, StageRejection } from '../domain/errors.ts';
import { requireDeployment, updateStage } from './deployments.ts';
import { renewDeploymentLocks } from './locks.ts';

export interface StageOutcome {
  message: string;
  details?: Record<string, unknown>;
}

/**
 * Run one pipeline check stage: mark it Running (and the deployment Running), run `fn`, then
 * record Succeeded or Failed with the message. A StageRejection fails the deployment at this
 * stage with its code; it is rethrown so the state machine takes its failure path.
 */
export async function runStage(
  executionId: string,
  stage: StageName,
  fn: (d: DeploymentRecord) => Promise<StageOutcome>,
): Promise<StageOutcome & { stage: StageName }> {
  const d = await requireDeployment(executionId);
  const prior = d.stages[stage];
  if (prior?.status === 'Succeeded') return { stage, message: prior.message ?? '', details: prior.details }; // a retry after success
  const startedAt = prior?.startedAt ?? new Date().toISOString();
  await renewDeploymentLocks(d, executionId);
  await updateStage(executionId, stage, { status: 'Running', startedAt }, { deploymentStatus: d.status === 'Pending' ? 'Running' : undefined });
  const finish = (patch: Partial<StageRecord> & { status: StageRecord['status'] }) => {
    const finishedAt = new Date().toISOString();
    return { ...patch, finishedAt, durationMs: Date.parse(finishedAt) - Date.parse(startedAt) };
  };
  try {
    const outcome = await fn(d);
    await updateStage(executionId, stage, finish({ status: 'Succeeded', message: outcome.message, details: outcome.details }));
    return { stage, ...outcome };
  } catch (e) {
    if (e instanceof StageRejection || e instanceof AppError) {
      await updateStage(executionId, stage, finish({ status: 'Failed', message: e.message }), {
        failure: { stage, code: e.code, message: e.message },
      });
    }
    throw e;
  }
}
