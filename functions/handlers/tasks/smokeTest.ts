import { AppError } from '../../domain/errors.ts';
import { agentClient, mapLimit } from '../../lib/agentClient.ts';
import { config } from '../../lib/config.ts';
import { recordStageDetail, requireDeployment } from '../../lib/deployments.ts';
import { environmentInput } from '../../lib/environmentStage.ts';
import { getNodes, type NodeRecord } from '../../lib/nodes.ts';
import { renewDeploymentLocks } from '../../lib/locks.ts';
import { getPlan, listBatches } from '../../lib/targets.ts';
import { taskHandler } from '../../lib/task.ts';
import { trafficRouter, type PreviewRoute } from '../../lib/trafficRouter.ts';

/**
 * Blue-Green smoke test, before any traffic moves. With a router that has a preview route, the
 * idle colour is tested as users will reach it: smoke probes through the router's preview route
 * (docs/adr/0020-traffic-routers.md), each idle node must answer, from the idle colour, with the
 * new version. Nodes the router cannot reach (no workload endpoint), and every node when there is
 * no router, run the module's self-test through their agent. The state machine bounds the whole
 * step (default 5 minutes).
 */
export const handler = taskHandler(environmentInput, async ({ executionId, environment }) => {
  const d = await requireDeployment(executionId);
  await renewDeploymentLocks(d, executionId);
  const plan = await getPlan(executionId, environment);
  const ids = (await listBatches(executionId, environment)).flatMap((b) => Object.keys(b.nodes));
  const nodes = await getNodes(environment, ids);
  const route = await trafficRouter(environment).previewRoute(environment);
  const viaRouter = route ? ids.filter((id) => nodes.get(id)?.workloadUrl) : [];
  const viaAgent = ids.filter((id) => !viaRouter.includes(id));
  const failures: string[] = [];
  if (route && viaRouter.length) failures.push(...(await throughPreview(route, viaRouter, d.moduleName, d.version, plan?.idleColour)));
  failures.push(...(await onAgents(viaAgent, nodes, d.moduleName)));
  await recordStageDetail(
    executionId,
    environment,
    'smokeTest',
    {
      nodes: ids.length,
      passed: ids.length - failures.length,
      failures,
      ...(route ? { route: 'preview', throughRouter: viaRouter.length } : { route: 'agent' }),
    },
    failures.length ? 'smoke-test.failed' : 'smoke-test.passed',
  );
  if (failures.length) throw new AppError('SmokeTestFailed', `smoke tests failed on ${failures.length} of ${ids.length} idle nodes: ${failures.join('; ')}`);
  return { passed: ids.length };
});

/**
 * Probes through the preview route until every idle node has answered (the router takes the
 * preview backends in turn; bounded at 4 rounds). A node fails on any bad answer, or if the router
 * never reached it.
 */
async function throughPreview(route: PreviewRoute, ids: string[], module: string, version: string, colour: string | undefined): Promise<string[]> {
  const wanted = new Set(ids);
  const answered = new Set<string>();
  const bad = new Map<string, string>();
  for (let i = 0; i < ids.length * 4 && answered.size < wanted.size; i++) {
    let r: Response;
    try {
      r = await fetch(`${route.url}/work?probe=smoke`, { headers: route.headers, signal: AbortSignal.timeout(config.agentTimeoutMs()) });
    } catch (e) {
      throw new AppError('PreviewRouteUnavailable', `the preview route ${route.url} did not answer: ${(e as Error).message}`);
    }
    const node = r.headers.get('x-kmod-node') ?? '';
    const text = await r.text();
    if (!wanted.has(node)) continue; // a preview backend outside this deployment (e.g. a skipped node)
    answered.add(node);
    const served = servedVersion(text, module);
    if (r.status !== 200) bad.set(node, `HTTP ${r.status} through the preview route: ${text.slice(0, 200)}`);
    else if (colour && r.headers.get('x-kmod-colour') !== colour) bad.set(node, `answered as ${r.headers.get('x-kmod-colour')}, not the idle colour ${colour}`);
    else if (served !== version) bad.set(node, `serves ${module}@${served ?? 'nothing'} through the preview route, not ${version}`);
  }
  for (const id of ids) if (!answered.has(id)) bad.set(id, 'never answered through the preview route');
  return [...bad].map(([id, why]) => `${id}: ${why}`);
}

/** The version an answer says it serves: a simulated node's JSON, or a workload's `<module> <version>` text. */
function servedVersion(text: string, module: string): string | undefined {
  try {
    const body = JSON.parse(text) as { modules?: Record<string, string> };
    if (body.modules) return body.modules[module];
  } catch {
    /* not JSON */
  }
  return new RegExp(`^${module} (\\S+)`).exec(text)?.[1];
}

async function onAgents(ids: string[], nodes: Map<string, NodeRecord>, module: string): Promise<string[]> {
  const results = await mapLimit(ids, config.agentConcurrency(), async (nodeId) => {
    const node = nodes.get(nodeId);
    if (!node) throw new Error(`node ${nodeId} is no longer registered`);
    return agentClient.smokeTest(node, module);
  });
  return results.flatMap((r, i) => {
    if (r.status === 'rejected') return [`${ids[i]}: ${(r.reason as Error).message}`];
    return r.value.passed
      ? []
      : [
          `${ids[i]}: ${r.value.checks
            .filter((c) => !c.passed)
            .map((c) => `${c.name} (${c.detail})`)
            .join(', ')}`,
        ];
  });
}
