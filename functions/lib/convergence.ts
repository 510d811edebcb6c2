/**
 * Convergence of enrolled nodes to their environment's desired state, through the heartbeat
 * answer (docs/adr/0011-pull-convergence.md): what a node must run to converge, as the very deploy
 * and rollback requests of the agent protocol, and the node's convergence bookkeeping (audited).
 */
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { ConvergeCommand } from '../agent/convergence.ts';
import type { ModuleState } from '../agent/protocol.ts';
import {
  convergenceBookkeeping,
  convergenceSteps,
  convergenceView,
  type ConvergenceFailure,
  type ConvergenceStep,
  type ConvergenceView,
  type DesiredModules,
  type TrackedConvergence,
} from '../domain/convergence.ts';
import type { Environment } from '../domain/environments.ts';
import { auditItem } from './audit.ts';
import { dynamo } from './aws.ts';
import { clearRepairedByConvergence } from './degraded.ts';
import { getCluster } from './trafficRouter.ts';
import { isConditionFailure } from './deployments.ts';
import { nodeSubject } from './enrolment.ts';
import { getLock } from './locks.ts';
import { artifactDownloadUrl, getModuleVersion } from './modules.ts';
import { runningModules, type NodeRecord } from './nodes.ts';
import { tableName } from './tables.ts';
import { logger } from './telemetry.ts';
import { type TransactItem, transactWrite } from './auditChain.ts';

/** The deployments holding these modules' locks in the environment now (lapsed leases hold nothing). */
export async function lockHolders(environment: Environment, modules: readonly string[]): Promise<Map<string, string>> {
  const now = Math.floor(Date.now() / 1000);
  const locks = await Promise.all(modules.map(async (m) => [m, await getLock(m, environment)] as const));
  return new Map(locks.flatMap(([m, lock]) => (lock && lock.expiresAt >= now ? [[m, lock.executionId] as [string, string]] : [])));
}

/** What differs on a node, with the modules a deployment is deciding marked `waitingFor`. */
async function stepsFor(
  environment: Environment,
  desired: DesiredModules,
  node: Pick<NodeRecord, 'colour'>,
  reported: Record<string, { version: string }>,
  holders?: Map<string, string>,
): Promise<ConvergenceStep[]> {
  const view = { colour: node.colour, reported };
  const candidates = convergenceSteps(desired, view, () => undefined);
  if (candidates.length === 0) return [];
  const locked =
    holders ??
    (await lockHolders(
      environment,
      candidates.map((s) => s.module),
    ));
  return convergenceSteps(desired, view, (m) => locked.get(m));
}

/**
 * A node's heartbeat was accepted: record where its convergence stands and answer the commands that
 * bring it to the desired state. Never fails the heartbeat: liveness does not depend on it.
 */
export async function reconcileNode(
  node: NodeRecord,
  reported: Record<string, ModuleState>,
  failures: readonly ConvergenceFailure[],
): Promise<ConvergeCommand[]> {
  try {
    const cluster = await getCluster(node.environment, { consistent: false });
    const desired = cluster?.desiredModules ?? {};
    // A node stuck on a version a rollback could not take back: once every stuck node runs the
    // desired state again, the environment's Degraded mark is cleared (audited).
    const degraded = cluster?.degradedModules ?? {};
    if (Object.values(degraded).some((m) => node.nodeId in m.stuckNodes)) await clearRepairedByConvergence(node, reported, degraded, desired);
    const tracked = node.convergence ?? {};
    if (Object.keys(desired).length === 0 && Object.keys(tracked).length === 0) return [];
    const steps = await stepsFor(node.environment, desired, node, reported);
    const book = convergenceBookkeeping(tracked, steps, desired, { colour: node.colour, reported }, failures);
    await recordBookkeeping(node, book);
    const commands = await Promise.all(book.issue.map(commandFor));
    return commands.filter((c): c is ConvergeCommand => c !== undefined);
  } catch (e) {
    logger.error('convergence not answered', { nodeId: node.nodeId, error: (e as Error).message });
    return [];
  }
}

async function commandFor(step: ConvergenceStep): Promise<ConvergeCommand | undefined> {
  if (step.to === null)
    return { action: 'rollback', module: step.module, from: step.from, to: null, request: { deploymentId: step.commandId, toVersion: null } };
  const m = await getModuleVersion(step.module, step.to);
  if (!m) {
    logger.warn('desired version is not registered', { module: step.module, version: step.to });
    return undefined;
  }
  return {
    action: 'deploy',
    module: step.module,
    from: step.from,
    to: step.to,
    // Exactly what a deployment's batch sends: the agent verifies the signed manifest against its own roots.
    request: {
      deploymentId: step.commandId,
      version: step.to,
      artifactUrl: await artifactDownloadUrl(m.artifactKey),
      sha256: m.manifest.artifact.sha256,
      manifest: m.manifest,
      signature: m.signature,
      certificateChain: m.certificateChain,
    },
  };
}

/** One change of `convergence.<module>` on the node, with its audit event; a failed condition means another heartbeat did it. */
async function nodeChange(
  node: NodeRecord,
  update: Omit<NonNullable<TransactItem['Update']>, 'TableName' | 'Key'>,
  action: string,
  details: Record<string, unknown>,
) {
  const item: TransactItem = { Update: { TableName: tableName('nodes'), Key: { environment: node.environment, nodeId: node.nodeId }, ...update } };
  const audit = auditItem({
    subject: nodeSubject(node.nodeId),
    category: 'node',
    action,
    actor: 'system:convergence',
    details: { environment: node.environment, ...details },
  });
  try {
    await transactWrite([item, { Put: audit }]);
  } catch (e) {
    if (!isConditionFailure(e)) throw e;
  }
}

async function recordBookkeeping(node: NodeRecord, book: ReturnType<typeof convergenceBookkeeping>): Promise<void> {
  const now = new Date().toISOString();
  if (book.start.length && !node.convergence) {
    // A nested SET needs its parent map.
    await dynamo().send(
      new UpdateCommand({
        TableName: tableName('nodes'),
        Key: { environment: node.environment, nodeId: node.nodeId },
        UpdateExpression: 'SET convergence = if_not_exists(convergence, :empty)',
        ConditionExpression: 'attribute_exists(nodeId)',
        ExpressionAttributeValues: { ':empty': {} },
      }),
    );
  }
  for (const s of book.start) {
    const t: TrackedConvergence = { commandId: s.commandId, from: s.from, to: s.to, startedAt: now };
    const superseded = node.convergence?.[s.module]?.commandId;
    await nodeChange(
      node,
      {
        UpdateExpression: 'SET convergence.#m = :t',
        ConditionExpression:
          'attribute_exists(nodeId) AND attribute_not_exists(decommissionedAt) AND (attribute_not_exists(convergence.#m) OR convergence.#m.commandId <> :id)',
        ExpressionAttributeNames: { '#m': s.module },
        ExpressionAttributeValues: { ':t': t, ':id': s.commandId },
      },
      'node.convergence.started',
      { module: s.module, from: s.from, to: s.to, commandId: s.commandId, desiredBy: s.desired.deploymentId, ...(superseded ? { superseded } : {}) },
    );
  }
  for (const c of book.converged) {
    const record = c.version === null ? undefined : { version: c.version, previousVersion: c.tracked.from ?? undefined, updatedAt: now };
    await nodeChange(
      node,
      {
        // The orchestrator's own record of what the node runs follows (a deployment reads it as the node's previous version).
        UpdateExpression: record ? 'REMOVE convergence.#m SET modules.#m = :v' : 'REMOVE convergence.#m, modules.#m',
        ConditionExpression: 'convergence.#m.commandId = :id',
        ExpressionAttributeNames: { '#m': c.module },
        ExpressionAttributeValues: { ':id': c.tracked.commandId, ...(record ? { ':v': record } : {}) },
      },
      'node.converged',
      { module: c.module, from: c.tracked.from, to: c.version, commandId: c.tracked.commandId, tookMs: Date.parse(now) - Date.parse(c.tracked.startedAt) },
    );
  }
  for (const c of book.cancelled) {
    await nodeChange(
      node,
      {
        UpdateExpression: 'REMOVE convergence.#m',
        ConditionExpression: 'convergence.#m.commandId = :id',
        ExpressionAttributeNames: { '#m': c.module },
        ExpressionAttributeValues: { ':id': c.tracked.commandId },
      },
      'node.convergence.cancelled',
      { module: c.module, commandId: c.tracked.commandId, reason: 'the desired state no longer asks this node for it' },
    );
  }
  for (const f of book.failed) {
    const lastError = { code: f.failure.code, message: f.failure.message, at: now };
    await nodeChange(
      node,
      {
        UpdateExpression: 'SET convergence.#m.lastError = :e',
        ConditionExpression: 'convergence.#m.commandId = :id',
        ExpressionAttributeNames: { '#m': f.module },
        ExpressionAttributeValues: { ':id': f.tracked.commandId, ':e': lastError },
      },
      'node.convergence.failed',
      { module: f.module, commandId: f.tracked.commandId, to: f.tracked.to, code: f.failure.code, message: f.failure.message },
    );
  }
}

/**
 * The cluster view's convergence of each enrolled node (fleet-managed nodes send no heartbeats and
 * are changed by deployments only). Reads each desired module's lock once.
 */
export async function clusterConvergence(
  environment: Environment,
  nodes: readonly NodeRecord[],
  desired: DesiredModules,
): Promise<Map<string, ConvergenceView>> {
  const enrolled = nodes.filter((n) => n.enrolment && !n.decommissionedAt);
  const out = new Map<string, ConvergenceView>();
  if (enrolled.length === 0) return out;
  const holders = Object.keys(desired).length ? await lockHolders(environment, Object.keys(desired)) : new Map<string, string>();
  for (const n of enrolled) {
    const steps = await stepsFor(environment, desired, n, runningModules(n), holders);
    out.set(n.nodeId, convergenceView(steps, n.convergence ?? {}));
  }
  return out;
}
