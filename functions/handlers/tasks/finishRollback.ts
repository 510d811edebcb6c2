import { z } from 'zod';
import { deploymentSubject } from '../../lib/audit.ts';
import { requireDeployment, updateDeploymentAudited } from '../../lib/deployments.ts';
import { environmentsUpTo } from '../../domain/environments.ts';
import { releaseLocks } from '../../lib/locks.ts';
import { caughtErrorSchema, describeCaughtError, executionIdSchema, taskHandler } from '../../lib/task.ts';

/** Settle a rollback on demand: the deployment ends RolledBack (one its cancel started leaves it Cancelled), or the rollback is marked Failed. */
export const handler = taskHandler(
  z.object({
    executionId: executionIdSchema,
    outcome: z.enum(['Succeeded', 'Failed']),
    error: caughtErrorSchema.optional(),
    // What each environment's rollback reported (the Map's results).
    results: z.array(z.object({ environment: z.string(), rollbackFailed: z.number() }).passthrough()).optional(),
  }),
  async ({ executionId, outcome, error, results }) => {
    const d = await requireDeployment(executionId);
    const now = new Date().toISOString();
    const failedEnvs = (results ?? []).filter((r) => r.rollbackFailed > 0).map((r) => r.environment);
    const ok = outcome === 'Succeeded' && failedEnvs.length === 0;
    // The rollback a cancel started leaves the deployment Cancelled (docs/adr/0019-steering-running-deployments.md);
    // any rollback on demand (of a Cancelled one too) ends it RolledBack.
    const endsRolledBack = ok && !d.rollback?.cancel;
    const message = ok
      ? 'every changed node is back on its previous version'
      : outcome === 'Failed'
        ? describeCaughtError(error).message
        : `rollback incomplete in ${failedEnvs.join(', ')}`;
    // False when already settled (a retry).
    await updateDeploymentAudited(
      executionId,
      {
        UpdateExpression: `SET #rollback.#status = :rs, #rollback.finishedAt = :now, #rollback.message = :m, updatedAt = :now${endsRolledBack ? ', #status = :rolledBack, finishedAt = :now' : ''}`,
        ConditionExpression: '#rollback.#status = :running',
        ExpressionAttributeNames: { '#rollback': 'rollback', '#status': 'status' },
        ExpressionAttributeValues: {
          ':rs': ok ? 'Succeeded' : 'Failed',
          ':now': now,
          ':m': message,
          ':running': 'Running',
          ...(endsRolledBack ? { ':rolledBack': 'RolledBack' } : {}),
        },
      },
      {
        subject: deploymentSubject(executionId),
        category: 'deployment',
        action: ok ? 'rollback.succeeded' : 'rollback.failed',
        actor: 'system:rollback',
        details: { message, ...(endsRolledBack ? { status: 'RolledBack' } : {}) },
      },
    );
    await releaseLocks(d.moduleName, environmentsUpTo(d.targetEnvironment), executionId);
    return { status: endsRolledBack ? 'RolledBack' : d.status, rollback: ok ? 'Succeeded' : 'Failed' };
  },
);
