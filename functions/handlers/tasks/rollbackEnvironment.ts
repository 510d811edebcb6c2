import { z } from 'zod';
import { switchBackNote } from '../../domain/blueGreen.ts';
import type { DesiredModule } from '../../domain/convergence.ts';
import type { DeploymentRecord } from '../../domain/deployment.ts';
import type { Environment } from '../../domain/environments.ts';
import { agentClient, mapLimit } from '../../lib/agentClient.ts';
import { config } from '../../lib/config.ts';
import { requireDeployment, updateStage } from '../../lib/deployments.ts';
import { restoreAfterRollback } from '../../lib/desiredState.ts';
import { environmentInput } from '../../lib/environmentStage.ts';
import { renewDeploymentLocks } from '../../lib/locks.ts';
import { clearDegraded, getDegraded, markDegraded } from '../../lib/degraded.ts';
import type { StuckNode } from '../../domain/degraded.ts';
import { getNode, recordNodeModule } from '../../lib/nodes.ts';
import { abortPlan, getPlan, listBatches, markTrafficSwitched, setBatchNodes, type BatchItem, type NodeTarget } from '../../lib/targets.ts';
import { caughtErrorSchema, describeCaughtError, taskHandler, type CaughtError } from '../../lib/task.ts';
import { getCluster, trafficRouter } from '../../lib/trafficRouter.ts';

/** What one pass over the ledger did. */
interface RollbackTally {
  rolledBack: number;
  /** `<node>: <reason>` for nodes whose rollback failed. */
  stuck: string[];
  /** Nodes a later deployment has changed since: left alone. */
  skipped: string[];
  /** The nodes whose rollback failed, with what they should run again (the environment's Degraded mark). */
  stuckNodes: Record<string, StuckNode>;
}

/**
 * Roll back what this deployment changed in one environment: traffic first (blue-green switches
 * back to the colour that served before), then every node back to the version it ran before (or
 * the module unloaded if it had none). Used by the automatic rollback of every strategy and by
 * rollback on demand. Idempotent: rolled-back nodes are skipped, and the agent treats a repeated
 * rollback id as a replay. A node that a later deployment has changed since is left alone. If the
 * environment's desired state is the one this deployment left, it goes back to what it replaced.
 */
export const handler = taskHandler(
  environmentInput.extend({ error: caughtErrorSchema.optional(), requestedBy: z.string().optional() }),
  async ({ executionId, environment, error, requestedBy }) => {
    const d = await requireDeployment(executionId);
    // Held through the rollback (automatic or on demand): no other deployment changes these nodes meanwhile.
    await renewDeploymentLocks(d, executionId);
    const { cause, onDemand, cascaded } = rollbackCause(d, environment, error, requestedBy);
    const notes: string[] = [];
    await abortPlan(executionId, environment, cause.message);
    const plan = await getPlan(executionId, environment);
    if (plan?.trafficSwitched && plan.activeColour && plan.idleColour) {
      const router = trafficRouter(environment);
      // Traffic first, then versions. Only if this deployment's switch is still the live one: a
      // later deployment that switched since keeps its traffic (its own rollback moves it).
      const live = await router.activeColour(environment);
      if (live === plan.idleColour) {
        await router.switchTo(environment, plan.activeColour, `${executionId}:rollback`);
        const traffic = d.stages?.[environment]?.details?.traffic as { switchBackUntil?: string } | undefined;
        notes.push(switchBackNote(plan.activeColour, traffic?.switchBackUntil, new Date()));
      } else {
        const by = (await getCluster(environment))?.switchedBy;
        if (by && !by.startsWith(executionId)) notes.push(`traffic left on ${live}: ${by} switched it since`);
      }
      await markTrafficSwitched(executionId, environment, false);
    }
    // A weighted canary: traffic off the canary nodes first, then their versions, then every node serves again.
    const canaryRouter = plan?.waves ? trafficRouter(environment) : undefined;
    if (canaryRouter?.weighted) {
      const canaryNodes = (await listBatches(executionId, environment)).flatMap((b) => Object.keys(b.nodes).filter((id) => b.nodes[id].status !== 'Pending'));
      await canaryRouter.setCanaryWeight(environment, canaryNodes, 0, `${executionId}:rollback`);
      notes.push('traffic moved off the canary nodes');
    }
    const tally = await rollBackNodes(d, environment);
    if (canaryRouter?.weighted) await canaryRouter.setCanaryWeight(environment, [], 100, `${executionId}:rollback`);
    const restored = await restoreAfterRollback(d, environment, requestedBy ?? 'system:rollback');
    // Nodes left on the new version: the environment stays marked until it is consistent again.
    const degraded = await settleDegraded(d, environment, tally, requestedBy ?? 'system:rollback');
    if (degraded) notes.push(degraded);
    // Planning itself failed (e.g. unreachable nodes): no node was touched, so the stage stays Failed.
    const neverPlanned = !plan && !onDemand && !cascaded;
    notes.push(neverPlanned ? 'no node was changed' : `rolled back ${tally.rolledBack} node(s) to their previous version`);
    if (tally.skipped.length) notes.push(`left ${tally.skipped.length} node(s) changed since: ${tally.skipped.join(', ')}`);
    if (restored !== undefined) notes.push(describeRestored(d.moduleName, restored));
    const outcome = tally.stuck.length || neverPlanned ? 'Failed' : 'RolledBack';
    await settleStage(d, environment, cause, notes, tally.stuck, outcome, onDemand || cascaded ? { actor: requestedBy } : undefined);
    return { environment, rolledBack: tally.rolledBack, rollbackFailed: tally.stuck.length, cause: cause.message };
  },
);

/**
 * Mark the environment Degraded for the module when nodes are stuck on the new version, or clear
 * this deployment's mark when every node is back (the repair by rollback on demand). Both audited
 * and idempotent. Returns the note for the stage's message.
 */
async function settleDegraded(d: DeploymentRecord, environment: Environment, tally: RollbackTally, actor: string): Promise<string | undefined> {
  if (Object.keys(tally.stuckNodes).length) {
    await markDegraded(d, environment, tally.stuckNodes, actor);
    return `${environment} is Degraded for ${d.moduleName} until ${Object.keys(tally.stuckNodes).sort().join(', ')} run(s) the previous version again`;
  }
  const mark = (await getDegraded(environment))[d.moduleName];
  if (mark?.deploymentId !== d.executionId) return undefined;
  const cleared = await clearDegraded(environment, d.moduleName, d.executionId, actor, 'rollback', { nodes: Object.keys(mark.stuckNodes).sort() });
  return cleared ? `${environment} is consistent again: its Degraded mark for ${d.moduleName} is cleared` : undefined;
}

function describeRestored(module: string, restored: DesiredModule | null): string {
  if (restored === null) return `no desired version of ${module} recorded any more`;
  return restored.version === null ? `desired state back to no ${module}` : `desired state back to ${module}@${restored.version}`;
}

/** Why this environment rolls back: on demand, because a later stage failed, or its own failure. */
function rollbackCause(d: DeploymentRecord, environment: Environment, error: CaughtError | undefined, requestedBy: string | undefined) {
  const onDemand = requestedBy !== undefined;
  const failure = describeCaughtError(error);
  // An environment that had succeeded is rolled back because a later one failed.
  const cascaded = !onDemand && d.stages[environment]?.status === 'Succeeded';
  const cause = onDemand
    ? { code: 'RollbackRequested', message: `rollback requested by ${requestedBy}` }
    : cascaded
      ? { code: failure.code, message: `rolled back because a later stage failed (${failure.message})` }
      : failure;
  return { cause, onDemand, cascaded };
}

/**
 * Every node the ledger shows deployed goes back. A batch already in flight when the environment
 * was aborted may still record deployed nodes: keep passing over the ledger until no batch is in
 * flight (bounded by the agent timeout).
 */
async function rollBackNodes(d: DeploymentRecord, environment: Environment): Promise<RollbackTally> {
  const tally: RollbackTally = { rolledBack: 0, stuck: [], skipped: [], stuckNodes: {} };
  const deadline = Date.now() + 2 * config.agentTimeoutMs() + 30_000;
  for (let pass = 0; ; pass++) {
    const batches = await listBatches(d.executionId, environment);
    for (const batch of batches) await rollBackBatch(d, environment, batch, pass === 0, tally);
    const inFlight = batches.some((b) => b.startedAt && !b.countedAt);
    if (!inFlight || Date.now() > deadline) return tally;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** One batch: its deployed nodes (and, on the first pass, those whose rollback failed before). */
async function rollBackBatch(d: DeploymentRecord, environment: Environment, batch: BatchItem, retryFailed: boolean, tally: RollbackTally): Promise<void> {
  const ids = Object.keys(batch.nodes).filter((id) => batch.nodes[id].status === 'Deployed' || (retryFailed && batch.nodes[id].status === 'RollbackFailed'));
  if (ids.length === 0) return;
  const outcomes = await mapLimit(ids, config.agentConcurrency(), (nodeId) => rollBackNode(d, environment, nodeId, batch.nodes[nodeId], tally));
  const nodes = { ...batch.nodes };
  for (const [i, id] of ids.entries()) {
    const o = outcomes[i];
    if (o.status === 'fulfilled') nodes[id] = o.value;
    else {
      nodes[id] = { ...nodes[id], status: 'RollbackFailed', message: (o.reason as Error).message };
      tally.stuck.push(`${id}: ${(o.reason as Error).message}`);
      tally.stuckNodes[id] = { previousVersion: batch.nodes[id].previousVersion, message: (o.reason as Error).message };
    }
  }
  await setBatchNodes(batch, nodes);
}

async function rollBackNode(d: DeploymentRecord, environment: Environment, nodeId: string, target: NodeTarget, tally: RollbackTally): Promise<NodeTarget> {
  const node = await getNode(environment, nodeId);
  if (!node) throw new Error(`node ${nodeId} is no longer registered`);
  const running = node.modules?.[d.moduleName]?.version ?? null;
  if (running !== d.version) {
    tally.skipped.push(`${nodeId} (now runs ${running ?? 'no version'})`);
    return { ...target, status: 'RolledBack', message: `left alone: now runs ${running ?? 'no version'}` };
  }
  const r = await agentClient.rollback(node, d.moduleName, { deploymentId: `${d.executionId}:rollback`, toVersion: target.previousVersion });
  await recordNodeModule(environment, nodeId, d.moduleName, r.version, d.version);
  tally.rolledBack++;
  return { ...target, status: 'RolledBack' };
}

/** The stage ends RolledBack, or Failed if a node could not be rolled back or none had been touched. */
async function settleStage(
  d: DeploymentRecord,
  environment: Environment,
  cause: { code: string; message: string },
  notes: string[],
  stuck: string[],
  outcome: 'Failed' | 'RolledBack',
  decidedBy: { actor: string | undefined } | undefined,
): Promise<void> {
  // The stage's count comes from the ledger, so a retried rollback neither loses nor doubles nodes.
  const totalRolledBack = (await listBatches(d.executionId, environment))
    .flatMap((b) => Object.values(b.nodes))
    .filter((n) => n.status === 'RolledBack' && !n.message?.startsWith('left alone')).length;
  const stage = d.stages[environment];
  const finishedAt = new Date().toISOString();
  await updateStage(
    d.executionId,
    environment,
    {
      status: outcome,
      finishedAt,
      durationMs: stage?.startedAt ? Date.parse(finishedAt) - Date.parse(stage.startedAt) : undefined,
      nodesRolledBack: totalRolledBack,
      message: [cause.message, ...notes, ...(stuck.length ? [`rollback FAILED on ${stuck.join('; ')}`] : [])].join('; '),
    },
    decidedBy ?? { failure: { stage: environment, code: cause.code, message: cause.message } },
  );
}
