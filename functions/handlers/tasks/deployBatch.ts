import { AppError } from '../../domain/errors.ts';
import { agentClient, mapLimit } from '../../lib/agentClient.ts';
import { config } from '../../lib/config.ts';
import { requireDeployment } from '../../lib/deployments.ts';
import { batchInput } from '../../lib/environmentStage.ts';
import { artifactDownloadUrl, getModuleVersion, type ModuleVersionRecord } from '../../lib/modules.ts';
import { getNodes, recordNodeModule, recordNodeModules, type NodeModuleChange, type NodeRecord } from '../../lib/nodes.ts';
import { audit, deploymentSubject } from '../../lib/audit.ts';
import { alignmentFor, type NodeAlignment, type ServedVersions } from '../../domain/blueGreen.ts';
import type { ModuleOperationResult } from '../../agent/protocol.ts';
import { abortPlan, getBatch, getPlan, markBatchStarted, recordBatchOutcome, type NodeTarget } from '../../lib/targets.ts';
import { lockLost, renewDeploymentLocks } from '../../lib/locks.ts';
import { taskHandler } from '../../lib/task.ts';

/**
 * Deploy the module to one batch of nodes. The agent call is idempotent per deployment id, so a
 * retry re-asks only nodes not yet Deployed. Any node failing fails the batch (after recording
 * every outcome), which sends the state machine to its rollback.
 */
export const handler = taskHandler(batchInput, async ({ executionId, environment, batch }) => {
  const d = await requireDeployment(executionId);
  const m = await getModuleVersion(d.moduleName, d.version);
  if (!m) throw new AppError('ModuleVersionNotFound', `${d.moduleName}@${d.version} is not registered`);
  const plan = await getPlan(executionId, environment);
  if (plan?.abortedAt) throw new AppError('EnvironmentAborted', `batch ${batch} not deployed: ${environment} was aborted (${plan.abortReason})`);
  // A canary wave's last batch leads into the bake: the lease covers it.
  const lost = await renewDeploymentLocks(d, executionId, { bakeSeconds: plan?.waves ? config.canaryBakeSeconds() : undefined });
  if (lost.includes(environment)) throw lockLost(d.moduleName, environment, executionId);
  const item = await getBatch(executionId, environment, batch);
  await markBatchStarted(item);
  const artifactUrl = await artifactDownloadUrl(m.artifactKey);
  const ids = Object.keys(item.nodes);
  const nodes = await getNodes(environment, ids);
  const alignedNodes: Record<string, NodeAlignment> = {};
  const versions = new Map<string, Promise<ModuleVersionRecord | undefined>>();
  const align = async (node: NodeRecord, served: ServedVersions): Promise<NodeAlignment> => {
    const changes = alignmentFor(node, served);
    for (const [module, { from, to }] of Object.entries(changes)) {
      const deploymentId = `${executionId}:align`;
      let r: ModuleOperationResult;
      if (to === null) r = await agentClient.rollback(node, module, { deploymentId, toVersion: null });
      else {
        const key = `${module}@${to}`;
        if (!versions.has(key)) versions.set(key, getModuleVersion(module, to));
        const mv = await versions.get(key);
        if (!mv) throw new Error(`${key}, which the live colour serves, is not registered`);
        r = await agentClient.deploy(node, module, {
          deploymentId,
          version: to,
          artifactUrl: await artifactDownloadUrl(mv.artifactKey),
          sha256: mv.manifest.artifact.sha256,
          manifest: mv.manifest,
          signature: mv.signature,
          certificateChain: mv.certificateChain,
        });
      }
      await recordNodeModule(environment, node.nodeId, module, r.version, from ?? undefined);
    }
    return changes;
  };
  // The version each node now runs, recorded for the whole batch at once after the agent calls
  // (the batch's outcome is recorded after them in any case: a node counts as Deployed, and is
  // rolled back, only once both are written).
  const confirmed: NodeModuleChange[] = [];
  const outcomes = await mapLimit(ids, config.agentConcurrency(), async (nodeId): Promise<NodeTarget> => {
    const target = item.nodes[nodeId];
    if (target.status === 'Deployed') return target;
    const node = nodes.get(nodeId);
    if (!node) return { ...target, status: 'Failed', message: `node ${nodeId} is no longer registered` };
    try {
      // Blue-Green: first the other modules at what the live colour serves, so the switch changes only this one.
      const aligned = plan?.align ? await align(node, plan.align) : undefined;
      if (aligned && Object.keys(aligned).length) alignedNodes[nodeId] = aligned;
      const r = await agentClient.deploy(node, d.moduleName, {
        deploymentId: executionId,
        version: d.version,
        artifactUrl,
        sha256: m.manifest.artifact.sha256,
        // An agent with its own trust roots verifies these itself before loading anything.
        manifest: m.manifest,
        signature: m.signature,
        certificateChain: m.certificateChain,
      });
      confirmed.push({ environment, nodeId, module: d.moduleName, version: r.version, previousVersion: target.previousVersion ?? undefined });
      return { ...target, status: 'Deployed', message: undefined, ...(aligned && Object.keys(aligned).length ? { aligned } : {}) };
    } catch (e) {
      return { ...target, status: 'Failed', message: (e as Error).message };
    }
  });
  const results: Record<string, NodeTarget> = {};
  ids.forEach((id, i) => {
    const o = outcomes[i];
    results[id] = o.status === 'fulfilled' ? o.value : { ...item.nodes[id], status: 'Failed', message: String(o.reason) };
  });
  const recorded = await recordNodeModules(confirmed);
  confirmed.forEach(({ nodeId }, i) => {
    const r = recorded[i];
    if (r.status === 'rejected') results[nodeId] = { ...results[nodeId], status: 'Failed', message: (r.reason as Error).message };
  });
  const failed = Object.entries(results).filter(([, n]) => n.status === 'Failed');
  const deployed = ids.length - failed.length;
  await recordBatchOutcome(executionId, environment, item, results, { nodesDeployed: deployed, nodesFailed: failed.length });
  if (Object.keys(alignedNodes).length) {
    await audit({
      subject: deploymentSubject(executionId),
      category: 'node',
      action: 'idle-colour.aligned',
      actor: 'system:pipeline',
      details: { stage: environment, batch, module: d.moduleName, nodes: alignedNodes },
    });
  }
  if (failed.length) {
    const message = `batch ${batch}: ${failed.length} of ${ids.length} nodes failed to deploy ${d.moduleName}@${d.version}: ${failed.map(([, n]) => n.message).join('; ')}`;
    await abortPlan(executionId, environment, message);
    throw new AppError('NodeDeployFailed', message);
  }
  return { batch, deployed, failed: 0 };
});
