import { baselineAverages } from '../../domain/canary.ts';
import type { Environment, Strategy } from '../../domain/environments.ts';
import { AppError, StageRejection } from '../../domain/errors.ts';
import type { EnvironmentPlan } from '../../domain/strategy.ts';
import { agentClient, mapLimit } from '../../lib/agentClient.ts';
import { config } from '../../lib/config.ts';
import { requireDeployment, updateStage } from '../../lib/deployments.ts';
import { planInput } from '../../lib/environmentStage.ts';
import { lockLost, renewDeploymentLocks } from '../../lib/locks.ts';
import { listNodes, type NodeRecord } from '../../lib/nodes.ts';
import { selectTargets, unreachableMessage } from '../../domain/membership.ts';
import { getPlan, writePlan, type PlanItem } from '../../lib/targets.ts';
import { taskHandler } from '../../lib/task.ts';
import { getModuleVersion } from '../../lib/modules.ts';
import { alignmentFor, servedByColour } from '../../domain/blueGreen.ts';
import { otherColour, type Colour } from '../../domain/strategy.ts';
import { trafficRouter } from '../../lib/trafficRouter.ts';
import { strategyFor } from '../../strategies/registry.ts';
import type { PlanDeps } from '../../strategies/types.ts';

/** The I/O strategy hooks may use (strategy modules stay free of the AWS SDK and agent client). */
const deps: PlanDeps = {
  activeColour: (environment) => trafficRouter(environment).activeColour(environment),
  metrics: async (nodes) => {
    const reports = await mapLimit([...nodes], config.agentConcurrency(), (n) => agentClient.metrics(n));
    return reports.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  },
};

/**
 * The strategy's plan and baseline for these nodes. A fleet the strategy cannot plan fails the
 * stage as PlanFailed; a hook's own StageRejection (e.g. no canary baseline) keeps its code.
 */
async function shapeFor(environment: Environment, strategy: Strategy, nodes: NodeRecord[], reject: (code: string, message: string) => Promise<StageRejection>) {
  const s = strategyFor(strategy);
  const context = (await s.prepare?.(environment, deps)) ?? {};
  let shape: EnvironmentPlan;
  try {
    shape = s.plan(
      nodes,
      {
        nodesPerBatch: config.nodesPerBatch(),
        rollingBatchSize: config.rollingBatchSize(),
        maxSequentialBatches: config.maxSequentialBatches(),
        canaryWaves: config.canaryWaves(),
      },
      context,
    );
  } catch (e) {
    throw await reject('PlanFailed', (e as Error).message);
  }
  let baseline: PlanItem['baseline'];
  try {
    baseline = await s.captureBaseline?.(environment, nodes, deps);
  } catch (e) {
    throw e instanceof StageRejection ? await reject(e.code, e.message) : e;
  }
  return { shape, baseline };
}

/**
 * Blue-Green: what the live colour serves of every other module, and what each idle node must
 * change to carry it (docs/adr/0020-traffic-routers.md). Every version to install must be
 * registered (the agents verify its signature); otherwise the plan fails and nothing changes.
 */
async function planAlignment(
  moduleName: string,
  environment: Environment,
  activeColour: Colour,
  idleIds: string[],
  reject: (code: string, message: string) => Promise<StageRejection>,
) {
  const all = await listNodes(environment);
  const served = servedByColour(all, activeColour, moduleName);
  const idle = new Set(idleIds);
  const changes = Object.fromEntries(
    all
      .filter((n) => idle.has(n.nodeId))
      .map((n) => [n.nodeId, alignmentFor(n, served.versions)] as const)
      .filter(([, a]) => Object.keys(a).length),
  );
  const needed = new Set(Object.values(changes).flatMap((a) => Object.entries(a).flatMap(([m, c]) => (c.to === null ? [] : [`${m}@${c.to}`]))));
  for (const mv of needed) {
    const [m, v] = mv.split('@');
    if (!(await getModuleVersion(m, v)))
      throw await reject(
        'AlignmentImpossible',
        `the ${otherColour(activeColour)} colour cannot be made to carry ${mv}, which ${activeColour} serves: that version is not registered`,
      );
  }
  return { served, changes };
}

/**
 * Start an environment's stage: decide, by strategy, which nodes change and in which groups, and
 * snapshot what each runs now (the ledger rollback relies on). Strategy hooks add what they need
 * (Canary a metric baseline, Blue-Green the idle colour). The result carries numbers only, not node lists.
 */
export const handler = taskHandler(planInput, async ({ executionId, environment, strategy }) => {
  const d = await requireDeployment(executionId);
  if ((await renewDeploymentLocks(d, executionId)).includes(environment)) throw lockLost(d.moduleName, environment, executionId);
  let plan = await getPlan(executionId, environment);
  if (!plan) {
    const reject = async (code: string, message: string) => {
      const e = new StageRejection(code, message);
      await updateStage(executionId, environment, { status: 'Failed', strategy, message }, { failure: { stage: environment, code, message } });
      return e;
    };
    const missed = config.missedHeartbeats();
    const selection = selectTargets(await listNodes(environment), d.unreachableNodes ?? 'fail', Date.now(), missed);
    if (!selection.ok) throw await reject('UnreachableNodes', unreachableMessage(environment, selection.unreachable, missed));
    const { targets: nodes, skipped } = selection;
    if (nodes.length === 0)
      throw await reject(
        'NoNodes',
        skipped.length ? `every node in ${environment} is unreachable (${skipped.join(', ')})` : `${environment} has no registered nodes`,
      );
    const { shape, baseline } = await shapeFor(environment, strategy, nodes, reject);
    const alignment =
      shape.activeColour && shape.idleColour ? await planAlignment(d.moduleName, environment, shape.activeColour, shape.batches.flat(), reject) : undefined;
    const previous = new Map(nodes.map((n) => [n.nodeId, n.modules?.[d.moduleName]?.version ?? null]));
    const batches = shape.batches.map((ids) => ids.map((nodeId) => ({ nodeId, previousVersion: previous.get(nodeId) ?? null })));
    plan = await writePlan(executionId, environment, strategy, batches, {
      waves: shape.waves,
      activeColour: shape.activeColour,
      idleColour: shape.idleColour,
      baseline,
      align: alignment?.served.versions,
    });
    const target =
      (shape.idleColour ? ` (idle colour ${shape.idleColour}; ${shape.activeColour} keeps serving)` : '') +
      (skipped.length ? `; skipped unreachable ${skipped.join(', ')}` : '');
    await updateStage(executionId, environment, {
      status: 'Running',
      strategy,
      startedAt: new Date().toISOString(),
      nodesTotal: plan.nodesTotal,
      nodesDeployed: 0,
      nodesFailed: 0,
      message: `deploying ${d.moduleName}@${d.version} to ${plan.nodesTotal} nodes in ${plan.batchCount} batches (${strategy})${target}`,
      details: {
        batches: plan.batchCount,
        ...(shape.waves
          ? { waves: shape.waves.map((w) => w.length), wavePercents: config.canaryWaves(), baseline: baseline && baselineAverages(baseline) }
          : {}),
        ...(shape.idleColour ? { activeColour: shape.activeColour, idleColour: shape.idleColour } : {}),
        // Audited with the stage: what the live colour serves of every other module, which the idle colour is made to carry.
        ...(alignment
          ? { alignment: { served: alignment.served.versions, mixed: alignment.served.mixed, nodesToAlign: Object.keys(alignment.changes).length } }
          : {}),
        // Audited with the stage (stage.running): these nodes stay as they are.
        ...(skipped.length ? { skippedNodes: skipped } : {}),
      },
    });
  }
  if (plan.strategy !== strategy) throw new AppError('PlanMismatch', `the plan for ${environment} was made for ${plan.strategy}, not ${strategy}`);
  return {
    batchCount: plan.batchCount,
    nodesTotal: plan.nodesTotal,
    batches: Array.from({ length: plan.batchCount }, (_, i) => i),
    waves: plan.waves?.map((batches, wave) => ({ wave, batches })),
    idleColour: plan.idleColour,
    bakeSeconds: config.canaryBakeSeconds(),
    smokeTestTimeoutSeconds: config.smokeTestTimeoutSeconds(),
  };
});
