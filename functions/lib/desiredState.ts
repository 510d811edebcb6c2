/**
 * Each environment's desired state: per module, the version its last successful deployment or
 * rollback left (functions/domain/convergence.ts). Kept in the environment's Clusters item under
 * `desiredModules`, changed only with its audit event in one transaction, under a condition on the
 * entry's revision (optimistic: read, compute, write if nobody wrote in between). Step Functions
 * retries are harmless: a deployment's entry is recorded once, and restored once.
 */
import type { DeploymentRecord } from '../domain/deployment.ts';
import type { Environment } from '../domain/environments.ts';
import { promote, restore, uniformVersion, type DesiredModule, type DesiredModules, type DesiredVersion } from '../domain/convergence.ts';
import { auditItem, type AuditEvent } from './audit.ts';
import { isConditionFailure } from './deployments.ts';
import { listNodes } from './nodes.ts';
import { tableName } from './tables.ts';
import { listBatches, type PlanItem } from './targets.ts';
import { getCluster } from './trafficRouter.ts';
import { transactWrite } from './auditChain.ts';

export const environmentSubject = (environment: Environment) => `environment#${environment}`;

export async function getDesiredModules(environment: Environment, opts: { consistent?: boolean } = {}): Promise<DesiredModules> {
  return (await getCluster(environment, opts))?.desiredModules ?? {};
}

const summaryOf = (e: DesiredVersion | null | undefined) =>
  e ? { version: e.version, deploymentId: e.deploymentId, ...(e.colour ? { colour: e.colour } : {}) } : null;

/** Optimistic attempts before giving up (only writers of the same module and environment race; a lock keeps them apart). */
const ATTEMPTS = 5;

/**
 * Change one module's entry: `compute` gets the current entry and answers the next one, `null` to
 * remove it, or `undefined` for "nothing to do". Returns what was written (undefined: nothing).
 */
async function changeDesired(
  environment: Environment,
  module: string,
  compute: (current: DesiredModule | undefined) => Promise<DesiredModule | null | undefined>,
  event: (current: DesiredModule | undefined, next: DesiredModule | null) => Omit<AuditEvent, 'subject' | 'category'>,
): Promise<DesiredModule | null | undefined> {
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const map = (await getCluster(environment, { consistent: true }))?.desiredModules;
    const current = map?.[module];
    const next = await compute(current);
    if (next === undefined || (next === null && !current)) return undefined;
    const key = { TableName: tableName('clusters'), Key: { environment } };
    const update = !map
      ? {
          ...key,
          UpdateExpression: 'SET desiredModules = :map',
          ConditionExpression: 'attribute_not_exists(desiredModules)',
          ExpressionAttributeValues: { ':map': { [module]: next } },
        }
      : !current
        ? {
            ...key,
            UpdateExpression: 'SET desiredModules.#m = :next',
            ConditionExpression: 'attribute_exists(desiredModules) AND attribute_not_exists(desiredModules.#m)',
            ExpressionAttributeNames: { '#m': module },
            ExpressionAttributeValues: { ':next': next },
          }
        : {
            ...key,
            UpdateExpression: next === null ? 'REMOVE desiredModules.#m' : 'SET desiredModules.#m = :next',
            ConditionExpression: 'desiredModules.#m.revision = :rev',
            ExpressionAttributeNames: { '#m': module },
            ExpressionAttributeValues: { ':rev': current.revision, ...(next === null ? {} : { ':next': next }) },
          };
    const audit = auditItem({ subject: environmentSubject(environment), category: 'deployment', ...event(current, next) });
    try {
      await transactWrite([{ Update: update }, { Put: audit }]);
      return next;
    } catch (e) {
      if (!isConditionFailure(e)) throw e;
    }
  }
  throw new Error(`the desired state of ${module} in ${environment} kept changing under ${ATTEMPTS} attempts`);
}

/**
 * What the environment ran before this deployment, for an environment with no desired state
 * recorded yet: the version all its targeted nodes ran (blue-green: the nodes of the colour that
 * served), if they all ran the same one.
 */
async function inferredBefore(d: DeploymentRecord, environment: Environment, plan: PlanItem | undefined): Promise<DesiredVersion | undefined> {
  if (plan?.activeColour && plan.idleColour) {
    const serving = (await listNodes(environment)).filter((n) => n.colour === plan.activeColour);
    const u = uniformVersion(serving.map((n) => n.modules?.[d.moduleName]?.version ?? null));
    return u && { ...u, deploymentId: null, colour: plan.activeColour };
  }
  const batches = await listBatches(d.executionId, environment);
  const u = uniformVersion(batches.flatMap((b) => Object.values(b.nodes).map((n) => n.previousVersion)));
  return u && { ...u, deploymentId: null };
}

/**
 * A deployment's stage in an environment succeeded: the environment now wants its version (on a
 * blue-green environment, on the colour it deployed to, which now serves). Idempotent.
 */
export async function recordPromotion(d: DeploymentRecord, environment: Environment, plan: PlanItem | undefined): Promise<DesiredModule | undefined> {
  const next: DesiredVersion = { version: d.version, deploymentId: d.executionId, ...(plan?.idleColour ? { colour: plan.idleColour } : {}) };
  const written = await changeDesired(
    environment,
    d.moduleName,
    async (current) => {
      if (current?.deploymentId === d.executionId) return undefined; // recorded already (a retry)
      const inferred = current ? undefined : await inferredBefore(d, environment, plan);
      return promote(current, next, inferred, new Date().toISOString());
    },
    (current, entry) => ({
      action: 'environment.desired-state.changed',
      actor: 'system:pipeline',
      details: {
        environment,
        module: d.moduleName,
        cause: 'deployment',
        deploymentId: d.executionId,
        from: summaryOf(current),
        to: summaryOf(entry),
        revision: entry?.revision,
      },
    }),
  );
  return written ?? undefined;
}

/**
 * A deployment was rolled back in an environment: if the environment's desired state is still the
 * one it left, put back what it replaced. Idempotent; a later deployment's entry is left alone.
 */
export async function restoreAfterRollback(d: DeploymentRecord, environment: Environment, actor: string): Promise<DesiredModule | null | undefined> {
  return changeDesired(
    environment,
    d.moduleName,
    async (current) => restore(current, d.executionId, new Date().toISOString()),
    (current, entry) => ({
      action: 'environment.desired-state.changed',
      actor,
      details: {
        environment,
        module: d.moduleName,
        cause: 'rollback',
        deploymentId: d.executionId,
        from: summaryOf(current),
        to: summaryOf(entry),
        revision: entry?.revision,
      },
    }),
  );
}
